"""``facesync watch``: a file written into the tree is sent soon after its last write, a burst goes in
batches, a file still growing is waited for, kill -9 loses nothing (the next start's pass settles and
rescans), SIGTERM ends it with 130, and a source without file events is refused (exit 2). Real
processes against the real emulator; guards bound the waits, nothing is timed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from tests.helpers import (
    assert_in_step,
    config_data,
    make_config,
    remote_hashes,
    sha,
    wait_until,
    write_config_file,
    write_files,
)
from tests.imagefactory import jpeg_bytes

GUARD = 60.0


def start(config_path: Path, out: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "pipeline", "--config", str(config_path), "watch"]
    command += ["--debounce", "0.3", "--settle", "0.3", "--json"]
    with out.open("ab") as stdout, out.with_suffix(".err").open("ab") as stderr:
        return subprocess.Popen(command, stdout=stdout, stderr=stderr)


def passes(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_watch_follows_the_tree(
    emulator: EmulatorThread, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    root = tmp_path / "archive"
    files = {f"old/IMG_{i}.jpg": jpeg_bytes(i) for i in range(3)}
    write_files(root, files)
    data = config_data(emulator.base_url, tmp_path)
    path, out = write_config_file(tmp_path / "c.yaml", data), tmp_path / "out.jsonl"
    config = make_config(emulator.base_url, tmp_path)
    procs.append(start(path, out))
    wait_until(lambda: len(emulator.images()) == 3, "the start's full pass", GUARD)

    one = {"new/one.jpg": jpeg_bytes(100)}
    write_files(root, one)
    files |= one
    wait_until(lambda: len(emulator.images()) == 4, "the new file sent", GUARD)

    burst = {f"import/IMG_{i:04d}.jpg": jpeg_bytes(1000 + i) for i in range(500)}
    before = len(passes(out))
    write_files(root, burst)
    files |= burst
    wait_until(lambda: len(emulator.images()) == len(files), "the burst sent", GUARD)
    assert len(passes(out)) - before < 20  # in batches, not one pass a file

    growing, whole = root / "slow" / "growing.jpg", jpeg_bytes(7)
    growing.parent.mkdir()
    with growing.open("wb") as f:  # written in pieces, each sooner than --settle after the last
        for at in range(0, len(whole), max(1, len(whole) // 8)):
            f.write(whole[at : at + max(1, len(whole) // 8)])
            f.flush()
            time.sleep(0.1)
    files["slow/growing.jpg"] = whole
    wait_until(lambda: remote_hashes(emulator)[sha(whole)] == 1, "the grown file sent", GUARD)

    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait(GUARD)
    while_dead = {"later/IMG_x.jpg": jpeg_bytes(555)}
    write_files(root, while_dead)
    files |= while_dead
    procs.append(start(path, out))
    wait_until(lambda: len(emulator.images()) == len(files), "the restart's pass", GUARD)
    procs[1].send_signal(signal.SIGTERM)
    assert procs[1].wait(GUARD) == 130
    assert_in_step(config, emulator, files)
    assert all(p["exit_code"] == 0 for p in passes(out))


def test_a_source_without_file_events_is_refused(emulator: EmulatorThread, tmp_path: Path) -> None:
    data = config_data(emulator.base_url, tmp_path, source=tmp_path / "photos.zip")
    path = write_config_file(tmp_path / "c.yaml", data)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", str(path), "watch"],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert result.returncode == 2
    assert "facesync watch follows a directory source" in result.stderr
