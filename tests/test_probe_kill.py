"""``kill -9`` of a ``facesync probe`` at every one of its requests: what it leaves is only its own
tagged images, and the next probe removes them (the journal names them by id, or by token when the
answer naming the id was lost)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.commands.probe import probe
from pipeline.config import Config
from pipeline.emulator import Emulator
from pipeline.probe.journal import PROBE_FIELD
from tests.helpers import config_data, make_config, write_config_file
from tests.imagefactory import make_jpeg
from tests.test_probe import foreign


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator on this test's loop: the test waits on its request log, never on the clock."""
    emulator = Emulator()
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def killable(emu: Emulator, tmp_path: Path) -> tuple[Path, Config]:
    """The config of the probe to kill, as a file for the process and as a value for the next probe."""
    make_jpeg(tmp_path / "archive" / "face.jpg", 7)
    options = {"limits": {"rate": 1000, "max_image_bytes": 1 << 20}}
    path = write_config_file(tmp_path / "probe.yaml", config_data(emu.base_url, tmp_path, **options))
    return path, make_config(emu.base_url, tmp_path, **options)


async def probe_killed_after(emu: Emulator, config_file: Path, requests: int) -> None:
    """Start ``facesync probe --yes`` and SIGKILL it once the emulator has answered ``requests``."""
    log = (config_file.parent / "killed.log").open("ab")
    # Popen, waited for in a thread: asyncio's child watcher can lose the status of a child killed fast.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "pipeline", "--config", str(config_file), "probe", "--yes", "--json"],
        stdout=log,
        stderr=log,
    )
    try:
        done = asyncio.create_task(asyncio.to_thread(proc.wait))
        answered = asyncio.create_task(emu.wait_for_requests(requests))
        await asyncio.wait({done, answered}, return_when=asyncio.FIRST_COMPLETED)
        answered.cancel()
        proc.kill()
        await done
    finally:
        log.close()


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {
            "id_kind": "str",
            "list_order": "newest_first",
            "dedup": True,
            "delete_unknown": "fail",
            "page_cap": 4,
        },
    ],
    ids=["defaults", "hex ids, newest first, dedup, unknown ids fail, pages of 4"],
)
async def test_a_probe_killed_at_any_request_leaves_only_tagged_images_the_next_probe_removes(
    emu: Emulator, tmp_path: Path, knobs: dict[str, Any]
) -> None:
    emu.configure(**knobs)
    config_file, config = killable(emu, tmp_path)
    emu.seed(6, foreign)
    whole = await probe(config, None, lambda question: True)
    assert whole.exit_code == 0
    steps = whole.outcome.profile.requests

    for killed_at in range(1, steps + 1):
        emu.reset()  # images, log and knobs: the knobs are set again
        emu.configure(**knobs)
        emu.seed(6, foreign)
        before = emu.images()

        await probe_killed_after(emu, config_file, killed_at)

        left = [image for image in emu.images() if image not in before]
        assert all(PROBE_FIELD in image.metadata for image in left), (killed_at, left)
        after = await probe(config, None, lambda question: True)
        assert after.exit_code == 0, (killed_at, after.to_json())
        assert emu.images() == before, killed_at
        assert after.outcome.leftovers >= len(left)
