"""The upload workers' pool: its stop ends every worker, whatever the queue holds, and a pool started
again serves the new workers. (A stop that lost a sentinel hung a sync refused by the first-upload
check, intermittently, in tests/test_state_loss.py.)"""

from __future__ import annotations

import asyncio

import pytest

from pipeline.engine.pool import WorkerPool


@pytest.mark.parametrize("workers", [2, 4, 8, 16])
@pytest.mark.parametrize("queued", [0, 1, 3, 7, 8, 15])
async def test_stop_ends_every_worker_after_the_queued_items(workers: int, queued: int) -> None:
    handled: list[int] = []

    async def handle(item: int) -> None:
        await asyncio.sleep(0)  # a turn of the loop, as a request's await is: workers finish out of order
        handled.append(item)

    pool: WorkerPool[int] = WorkerPool(handle, maxsize=8, name="w")
    pool.start(workers)
    for item in range(queued):
        await pool.put(item)

    results = await asyncio.wait_for(pool.stop(), timeout=10)  # a lost sentinel: it would wait for ever

    assert results == [None] * workers
    assert sorted(handled) == list(range(queued))
    assert all(task.done() for task in pool.tasks)


async def test_a_worker_cancelled_leaves_no_sentinel_behind_for_the_next_start() -> None:
    handled: list[str] = []
    hold = asyncio.Event()

    async def handle(item: str) -> None:
        if item == "slow":
            await hold.wait()
        handled.append(item)

    pool: WorkerPool[str] = WorkerPool(handle, maxsize=8, name="w")
    pool.start(2)
    await pool.put("slow")
    await asyncio.sleep(0.01)
    pool.tasks[0].cancel()  # as Ctrl-C's grace cut does

    results = await asyncio.wait_for(pool.stop(), timeout=10)

    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 1
    pool.start(2)  # the engine starts workers again for held-back copies
    for item in ("a", "b", "c"):
        await pool.put(item)
    assert await asyncio.wait_for(pool.stop(), timeout=10) == [None, None]
    assert handled == ["a", "b", "c"]


async def test_what_a_worker_raises_is_returned_and_drop_queued_counts_what_was_never_taken() -> None:
    started = asyncio.Event()
    hold = asyncio.Event()

    async def handle(item: int) -> None:
        started.set()
        await hold.wait()
        if item == 0:
            raise ValueError("a bug")

    pool: WorkerPool[int] = WorkerPool(handle, maxsize=8, name="w")
    pool.start(1)
    for item in range(4):
        await pool.put(item)
    await started.wait()

    assert pool.drop_queued() == 3  # the three the worker had not taken
    hold.set()
    [result] = await asyncio.wait_for(pool.stop(), timeout=10)
    assert isinstance(result, ValueError)
