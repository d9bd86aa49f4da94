"""The state writer's group commit (pipeline/state/writer.py): intents queued together share one
transaction, and each is still durable — readable by another connection — before its request is sent."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.config import TOKEN_FIELD
from pipeline.emulator import Emulator, EmulatorThread
from pipeline.state import Row, State, StateWriter, Status, Unsettled
from tests.helpers import assert_in_step, make_config, sync, write_files
from tests.imagefactory import jpeg_bytes


def row(key: str, status: Status, token: str) -> Row:
    return Row(key=key, size=1, mtime_ns=1, status=status, token=token, updated_at=time.time())


def seen_by_another_connection(path: Path) -> dict[str, tuple[str, bool]]:
    """Every row's token → (status, whether its token is unsettled), as a second reader sees them."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        unsettled = {t for (t,) in db.execute("SELECT token FROM unsettled")}
        return {t: (s, t in unsettled) for t, s in db.execute("SELECT token, status FROM items")}
    finally:
        db.close()


async def test_intents_queued_over_a_few_turns_of_the_loop_share_one_transaction(tmp_path: Path) -> None:
    with State.open(tmp_path / "state.db") as state:
        async with StateWriter(state) as writer:

            async def intent(i: int) -> None:
                for _ in range(i % 3):  # workers whose answers came a turn or two later
                    await asyncio.sleep(0)
                await writer.commit(
                    put=[row(f"k{i}", Status.UPLOADING, f"t{i}")], unsettled_add=[Unsettled(f"t{i}", f"k{i}")]
                )

            await asyncio.gather(*(intent(i) for i in range(24)))
            assert writer.commits == 1
            assert seen_by_another_connection(tmp_path / "state.db") == {
                f"t{i}": ("uploading", True) for i in range(24)
            }


async def test_each_intent_is_durable_when_its_commit_returns_and_results_before_it_too(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    with State.open(path) as state:
        async with StateWriter(state) as writer:
            await writer.commit(put=[row("a", Status.UPLOADING, "ta")], unsettled_add=[Unsettled("ta", "a")])
            writer.submit(put=[row("a", Status.SYNCED, "ta")], unsettled_done=["ta"])  # a result: not awaited

            async def intent(i: int) -> dict[str, tuple[str, bool]]:
                await writer.commit(
                    put=[row(f"b{i}", Status.UPLOADING, f"tb{i}")],
                    unsettled_add=[Unsettled(f"tb{i}", f"b{i}")],
                )
                return seen_by_another_connection(path)  # what a kill -9 right now would leave

            for i, seen in enumerate(await asyncio.gather(intent(0), intent(1), intent(2))):
                assert seen[f"tb{i}"] == ("uploading", True)
                assert seen["ta"] == ("synced", False)  # queued before the intents: in their transaction
        assert seen_by_another_connection(path)["ta"] == ("synced", False)


async def test_every_add_reaches_the_service_with_its_intent_already_durable(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """What a ``kill -9`` between the intent and the POST relies on: the row (``uploading``, its token)
    and the token's unsettled entry are committed before the service sees the add."""
    files = {f"album/IMG_{i:03d}.jpg": jpeg_bytes(i) for i in range(60)}
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, limits={"concurrency": 16})
    state_path = tmp_path / "state.db"
    checked: list[str] = []
    missing: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def hook(e: Emulator) -> None:
        store = e.store
        original = type(store)._insert.__get__(store)

        def insert(entries: list[Any]) -> None:
            seen = seen_by_another_connection(state_path)
            with lock:
                for entry in entries:
                    token = entry.metadata[TOKEN_FIELD]
                    checked.append(token)
                    if seen.get(token) != ("uploading", True):
                        missing.append((token, seen.get(token)))
            original(entries)

        store._insert = insert  # type: ignore[method-assign]

    emulator.call(hook)
    try:
        report, log = await sync(config)
    finally:
        emulator.call(lambda e: e.store.__dict__.pop("_insert", None))
    assert report.added == 60, log
    assert (len(checked), missing) == (60, [])
    assert_in_step(config, emulator, files)
