"""The state writer: the only task that writes SQLite during a run.

Workers hand it rows; it commits whatever has queued up in one transaction (group commit). An
*intent* (a row marked ``uploading`` or ``deleting`` before its request is sent) is awaited until
it is durable; a *result* is fire-and-forget — if the process dies before it lands, the row is
still ``uploading`` and the next run or reconcile settles it, which is the crash-safety protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Protocol, Unpack

from pipeline.state.rows import Changes, ChangeSet
from pipeline.state.store import State

#: Most rows committed in one transaction; larger batches only delay the intents waiting on them.
MAX_BATCH = 512


@dataclass
class _Batch(Changes):
    """What one transaction commits, and the intents waiting for it."""

    waiters: list[asyncio.Future[None]] = field(default_factory=list)


@dataclass
class _Job:
    """One submit or commit: its changes, and for a commit the future it waits on."""

    changes: ChangeSet
    done: asyncio.Future[None] | None = None


class Writer(Protocol):
    """What the engine writes the state through: results queued, intents awaited until durable."""

    def submit(self, **changes: Unpack[ChangeSet]) -> None: ...
    async def commit(self, **changes: Unpack[ChangeSet]) -> None: ...


class DiscardingWriter:
    """A dry run's writer: takes every change and keeps none, so the run changes no state."""

    def submit(self, **changes: Unpack[ChangeSet]) -> None:
        """Drop a result."""

    async def commit(self, **changes: Unpack[ChangeSet]) -> None:
        """Drop an intent (nothing is sent after it in a dry run)."""

    async def __aenter__(self) -> DiscardingWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class StateWriter:
    """Batches writes into transactions; ``async with StateWriter(state) as w`` flushes on exit."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.error: BaseException | None = None

    async def __aenter__(self) -> StateWriter:
        self._task = asyncio.create_task(self._run(), name="state-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush everything queued and stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)
        self._task = None
        if self.error is not None:
            raise self.error

    def submit(self, **changes: Unpack[ChangeSet]) -> None:
        """Queue a result; it lands with the next batch."""
        self._check()
        self._queue.put_nowait(_Job(changes))

    async def commit(self, **changes: Unpack[ChangeSet]) -> None:
        """Queue an intent and wait until it is durable (committed)."""
        self._check()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(changes, done))
        await done

    def _check(self) -> None:
        if self.error is not None:
            raise self.error
        if self._task is None:
            raise RuntimeError("StateWriter used outside 'async with'")

    async def _run(self) -> None:
        stop = False
        while not stop:
            job = await self._queue.get()
            batch = _Batch()
            while True:
                if job is None:
                    stop = True
                else:
                    batch.add(job.changes)
                    if job.done is not None:
                        batch.waiters.append(job.done)
                if stop or batch.size() >= MAX_BATCH or self._queue.empty():
                    break
                job = self._queue.get_nowait()
            try:
                self._flush(batch)
            except BaseException as exc:  # a failed commit fails the run; nobody may wait forever
                self.error = exc
                self._fail_waiting(exc)
                return

    def _fail_waiting(self, exc: BaseException) -> None:
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None and job.done is not None and not job.done.done():
                job.done.set_exception(exc)

    def _flush(self, batch: _Batch) -> None:
        if batch.size():
            try:
                self.state.apply(**batch.as_set())
                self.commits += 1
            except BaseException as exc:
                for waiter in batch.waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                raise
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)
