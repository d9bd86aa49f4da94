"""The state read raw (``State.raw_rows``), as the sync's march reads it: on real files under tmp_path."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import StateError
from pipeline.sources import key_order
from pipeline.state import Row, State, Status


@pytest.fixture
def state(tmp_path: Path):
    with State.open(tmp_path / "s.db") as st:
        yield st


def row(key: str, status: Status = Status.SYNCED, **kw: object) -> Row:
    base: dict[str, object] = {
        "size": 10,
        "mtime_ns": 1_000,
        "updated_at": 1.0,
        "sha256": f"sha-{key_order(key).hex()}",
    }
    base.update(kw)
    return Row(key, status=status, **base)  # type: ignore[arg-type]


def test_raw_rows_are_the_rows_columns_in_key_order_and_sha256_only_when_asked(state: State) -> None:
    keys = ["b", "a-c", "a/b", "\udcff.jpg", "é"]
    transform = {"b": "v1 jpeg q85 1600px convert=heic"}
    state.put_many(
        [
            row(k, etag="e" if k == "b" else None, meta_hash=f"|{len(k)}", transform=transform.get(k))
            for k in keys
        ]
    )
    ordered = sorted(keys, key=key_order)
    with state.raw_rows() as rows:
        assert list(rows) == [
            (
                key_order(k),
                10,
                1_000,
                "synced",
                "e" if k == "b" else None,
                f"|{len(k)}",
                transform.get(k),
                None,
            )
            for k in ordered
        ]
    with state.raw_rows(sha256=True) as rows:
        assert [r[7] for r in rows] == [f"sha-{key_order(k).hex()}" for k in ordered]


def test_a_whole_row_is_read_on_demand_from_the_same_snapshot(state: State) -> None:
    """The march pairs a raw row with its whole row: both must be the state as the run began."""
    state.put_many([row(f"k{i:04d}", remote_id=i) for i in range(3000)])
    with state.raw_rows() as rows:
        stream = iter(rows)
        first = next(stream)
        state.apply(put=[row("k2999", Status.FAILED, remote_id=7), row("k5000")], delete=["k0001"])
        assert rows.row(key_order("k0001")) == row("k0001", remote_id=1)
        assert rows.row(key_order("k2999")) == row("k2999", remote_id=2999)
        keys = [first[0], *(r[0] for r in stream)]
    assert keys == [key_order(f"k{i:04d}") for i in range(3000)]
    with state.raw_rows() as rows:  # a new read sees the commit
        assert rows.row(key_order("k2999")).status is Status.FAILED


def test_a_damaged_state_is_a_state_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with State.open(path) as st:
        st.put_many([row(f"k{i:05d}", message="x" * 200) for i in range(2000)])
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with path.open("r+b") as f:  # the pages past the first few: the table's leaves, not its header
        f.seek(16 * 4096)
        f.write(b"\x5a" * 64 * 4096)
    with State(path, sqlite3.connect(path)) as st, pytest.raises(StateError, match=r"s\.db"):
        rows = st.raw_rows()
        try:
            list(rows)
        finally:
            rows.close()


def test_the_snapshot_ends_with_the_stream_so_the_writes_after_it_are_checkpointed(state: State) -> None:
    """A first sync reads no row and then writes a million: a reader kept open would hold every frame
    in the WAL (and its index in memory) until the run ends."""
    state.put_many([row("a"), row("b")])

    def checkpoint() -> int:
        db = sqlite3.connect(state.path, timeout=0)  # busy at once: no waiting on the reader
        try:
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            db.close()
        return int(busy)

    with state.raw_rows() as rows:
        stream = iter(rows)
        next(stream)
        state.put_many([row("c")])
        assert checkpoint() == 1  # the snapshot is in use: the WAL cannot be reset under it
        assert [r[0] for r in stream] == [b"b"]
        state.put_many([row("d")])
        assert checkpoint() == 0
        assert Path(f"{state.path}-wal").stat().st_size == 0
