"""A fixed pool of asyncio workers fed by one bounded queue, and the stop that ends every one of them.

The sync engine's upload workers run here. The stop is the delicate part: one sentinel per worker
still running, counted *once* before the first is queued. Counting while queueing — skipping a
worker found finished — loses a sentinel whenever a worker finishes on one queued for another while
the queue is full (the put waits, the workers drain it, one takes an earlier sentinel): a worker
then waits on the empty queue for ever, and the run with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_STOP = object()


class WorkerPool(Generic[T]):
    """``count`` tasks each awaiting ``handle(item)`` for the items :meth:`put` queues, until :meth:`stop`."""

    def __init__(self, handle: Callable[[T], Awaitable[None]], *, maxsize: int, name: str) -> None:
        self._handle = handle
        self._name = name
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=maxsize)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, count: int) -> None:
        """Start ``count`` workers (again, after a :meth:`stop`: the queue serves the new ones)."""
        self.tasks = [asyncio.create_task(self._work(), name=f"{self._name}-{i}") for i in range(count)]

    async def put(self, item: T) -> None:
        """Queue ``item``, waiting while the queue is full."""
        await self._queue.put(item)

    def drop_queued(self) -> int:
        """Forget what is queued and not yet taken; how many items that was."""
        dropped = 0
        while not self._queue.empty():
            dropped += self._queue.get_nowait() is not _STOP
        return dropped

    def cancel(self) -> None:
        """Cancel every worker (what it was handling is cut)."""
        for task in self.tasks:
            task.cancel()

    async def stop(self) -> list[BaseException | None]:
        """Let the workers finish what is queued, end them, and return how each ended (an exception it
        raised, or None). Each running worker ends on exactly one sentinel, queued behind the items."""
        running = sum(1 for task in self.tasks if not task.done())  # counted before any put can wait
        for _ in range(running):
            await self._queue.put(_STOP)
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        self.drop_queued()  # sentinels of workers cancelled meanwhile: a later start must not see them
        return [r if isinstance(r, BaseException) else None for r in results]

    async def _work(self) -> None:
        while (item := await self._queue.get()) is not _STOP:
            await self._handle(item)  # type: ignore[arg-type]  # only put() queues anything else
