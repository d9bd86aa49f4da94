"""The state writer: the only task that writes SQLite during a run.

Workers hand it rows; it commits whatever has queued up in one transaction (group commit). An
*intent* (a row marked ``uploading`` or ``deleting`` before its request is sent) is awaited until
it is durable; a *result* is fire-and-forget — if the process dies before it lands, the row is
still ``uploading`` and the next run or reconcile settles it, which is the crash-safety protocol.

Once an intent waits, the writer lets the loop turn (up to :data:`GATHER_TURNS` times, while each
turn queues more) before it commits: the workers whose answers came in together queue their results
and next intents in those turns, and one transaction takes them all. A state write costs per
transaction more than per row (docs/performance.md: 8 rows a transaction instead of 2–3 halve it);
no intent is released before the transaction holding it is committed.
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
#: Most turns of the event loop an intent waits for others to join its transaction (while each brings
#: more): fewer, larger transactions, each intent still durable before its request is sent.
GATHER_TURNS = 8


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
            batch = _Batch()
            stop = self._take(batch, await self._queue.get())
            try:
                stop = stop or await self._gather(batch)
            except asyncio.CancelledError:  # what was taken still lands: no intent left waiting
                self._flush(batch)
                raise
            try:
                self._flush(batch)
            except BaseException as exc:  # a failed commit fails the run; nobody may wait forever
                self.error = exc
                self._fail_waiting(exc)
                return

    async def _gather(self, batch: _Batch) -> bool:
        """Group commit: while an intent waits and each turn of the loop brings more (workers whose
        answers came in the same turn queue their results and next intents), take up to GATHER_TURNS
        more turns' worth. True once the stop is seen."""
        for _ in range(GATHER_TURNS):
            if not batch.waiters or batch.size() >= MAX_BATCH:
                return False
            await asyncio.sleep(0)
            if self._queue.empty():
                return False
            if self._take(batch, self._queue.get_nowait()):
                return True
        return False

    def _take(self, batch: _Batch, job: _Job | None) -> bool:
        """Add ``job`` and everything queued behind it (up to MAX_BATCH rows); True once the stop is seen."""
        while True:
            if job is None:
                return True
            batch.add(job.changes)
            if job.done is not None:
                batch.waiters.append(job.done)
            if batch.size() >= MAX_BATCH or self._queue.empty():
                return False
            job = self._queue.get_nowait()

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
