"""What a reconcile spills — the sorter's runs while the listed ids are indexed, the TEMP ``doomed``
table once it outgrows the page cache — goes beside the state, never to SQLite's temp store
(``SQLITE_TMPDIR``, ``TMPDIR``, ``/var/tmp``, ``/tmp``: often a tmpfs, that is RAM).

The proof runs in a child process (SQLite reads its environment once, when it starts) whose
``SQLITE_TMPDIR`` and ``TMPDIR`` are a 64 KiB tmpfs mounted for the test (root only; skipped
otherwise): 200,000 listed images, indexed and doomed, need megabytes of temporary room."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.state import State
from tests.helpers import tmpfs

#: The child: list 200,000 images no row holds and carries no token, index them, doom them all.
_CHILD = """
import sys
from pathlib import Path
from pipeline.state import State

state = State.open(Path(sys.argv[1]))
listing = state.listing()
listing.start()
n = 200_000
for at in range(0, n, 1000):
    listing.add([(str(i), i, None, f"k{i:07d}") for i in range(at, at + 1000)])
print(listing.count(), listing.doom_tokenless(), listing.doomed_count("orphan"))
listing.close()
state.close()
"""


@pytest.fixture
def tiny_tmp(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB file system of its own, to stand for SQLite's temp store."""
    with tmpfs(tmp_path / "tiny-tmp", "64k") as where:
        yield where


def test_reconcile_spills_beside_the_state_not_into_the_temp_store(tmp_path: Path, tiny_tmp: Path) -> None:
    state = tmp_path / "state" / "state.db"
    state.parent.mkdir()
    env = {**os.environ, "SQLITE_TMPDIR": str(tiny_tmp), "TMPDIR": str(tiny_tmp)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(state)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["200000", "200000", "200000"]
    assert list(tiny_tmp.iterdir()) == []
    assert {p.name for p in state.parent.iterdir()} <= {"state.db", "state.db-shm", "state.db-wal"}


def test_the_temp_directory_is_the_states_folder_for_the_run_only(tmp_path: Path) -> None:
    state = State.open(tmp_path / "state.db")
    try:
        db = state._db
        before = db.execute("PRAGMA temp_store_directory").fetchall()
        listing = state.listing()
        listing.start()
        assert db.execute("PRAGMA temp_store_directory").fetchone()[0] == str(tmp_path.resolve())
        assert db.execute("PRAGMA temp_store").fetchone()[0] == 1  # FILE
        listing.add([("1", 1, None, "a.jpg")])
        assert listing.doom_tokenless() == 1
        listing.close()
        assert db.execute("PRAGMA temp_store_directory").fetchall() == before
    finally:
        state.close()
