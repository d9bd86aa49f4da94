"""Commands that only read (``status``, ``ls``, ``search``) and ``retry`` never create a state: a
mistyped ``state.path`` is one clear line and exit 2, not an empty archive reporting "total 0"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.errors import EXIT_USAGE
from tests.helpers import config_data, make_config, sync, write_config_file, write_files
from tests.imagefactory import jpeg_bytes


def facesync(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["ls"],
        ["ls", "--format", "csv"],
        ["search", "q.jpg"],
        ["retry", "--status", "failed"],
    ],
    ids=lambda c: " ".join(c),
)
def test_a_missing_state_is_refused_with_one_line_and_nothing_is_created(
    emulator: EmulatorThread, tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "q.jpg").write_bytes(jpeg_bytes(1))
    typo = tmp_path / "stat" / "facesync.db"  # the user meant state/facesync.db
    config = write_config_file(
        tmp_path / "facesync.yaml", config_data(emulator.base_url, tmp_path, state=typo)
    )
    before = sorted(p.name for p in tmp_path.iterdir())

    done = facesync(tmp_path, "--config", str(config), *command)

    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"facesync: error: state {typo}: no such file (check state.path; `facesync sync` creates the state)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no state, no folder, no lock file
    assert emulator.requests() == []  # and no request spent


async def test_status_reads_an_existing_state(emulator: EmulatorThread, tmp_path: Path) -> None:
    write_files(tmp_path / "archive", {"a.jpg": jpeg_bytes(1)})
    config = write_config_file(tmp_path / "facesync.yaml", config_data(emulator.base_url, tmp_path))
    assert (await sync(make_config(emulator.base_url, tmp_path)))[0].exit_code == 0

    done = facesync(tmp_path, "--config", str(config), "status")

    assert done.returncode == 0, done.stderr
    assert "files   1" in done.stdout and "synced     1" in done.stdout
