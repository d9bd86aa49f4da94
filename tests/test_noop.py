"""The nightly no-op as cron runs it: a ``facesync`` process over an unchanged archive, against a URL.

Nothing that sends requests is imported when no request is needed: the process is asked which modules
it loaded (``python -X importtime``), not timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.emulator import EmulatorThread
from tests.helpers import config_data, make_config, sync, write_config_file, write_files
from tests.imagefactory import jpeg_bytes


def facesync(config_file: Path, *args: str) -> tuple[dict[str, object] | None, set[str], int]:
    """``python -X importtime -m pipeline ARGS``: its JSON answer (if any), modules imported, exit code."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", "--config", str(config_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if "import time:" in line}
    last = done.stdout.strip().splitlines()[-1:] or [""]
    answer = json.loads(last[0]) if last[0].startswith("{") else None
    return answer, modules, done.returncode


def sending(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] == "aiohttp"}


async def test_a_no_op_sync_sends_nothing_and_does_not_import_aiohttp(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(root, {f"album/{i}.jpg": jpeg_bytes(i) for i in range(6)})
    write_files(root, {"album/1.jpg.json": b'{"people": ["An"]}', "notes.jpg": b"text, refused"})
    assert (await sync(make_config(emulator.base_url, tmp_path)))[0].exit_code == 0
    config_file = write_config_file(tmp_path / "c.yaml", config_data(emulator.base_url, tmp_path))
    before = len(emulator.requests())

    answer, modules, code = facesync(config_file, "sync", "--json")

    assert code == 0 and answer is not None
    assert (answer["unchanged"], answer["added"], answer["requests"]) == (7, 0, 0)
    assert len(emulator.requests()) == before
    assert "pipeline.engine.sync" in modules and sending(modules) == set()


async def test_aiohttp_is_imported_when_the_first_request_is_sent(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(root, {"a.jpg": jpeg_bytes(1)})
    assert (await sync(make_config(emulator.base_url, tmp_path)))[0].exit_code == 0
    write_files(root, {"b.jpg": jpeg_bytes(2)})
    config_file = write_config_file(tmp_path / "c.yaml", config_data(emulator.base_url, tmp_path))

    answer, modules, code = facesync(config_file, "sync", "--json")

    assert code == 0 and answer is not None
    assert (answer["unchanged"], answer["added"]) == (1, 1)
    assert "aiohttp" in sending(modules)


def test_commands_that_send_nothing_do_not_import_aiohttp(tmp_path: Path) -> None:
    config_file = write_config_file(
        tmp_path / "c.yaml", config_data("http://127.0.0.1:9/api/v2/face_search", tmp_path)
    )
    (tmp_path / "archive").mkdir()
    for args in (("status", "--json"), ("ls",), ("--help",)):
        _, modules, _ = facesync(config_file, *args)
        assert modules and sending(modules) == set(), args
