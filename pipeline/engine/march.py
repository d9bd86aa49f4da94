"""The march: the source's scan paired with the state's rows, in a thread, for the sync engine.

The scan and the state cursor are blocking, so they run in a thread of their own: ``plan_changes``
merge-joins them as plain tuples, keys in step are only counted (a no-op run builds no object per
file), and the pairs that need work are handed to the loop in chunks of :data:`CHUNK`. The state is
read on its own connection, one snapshot: the state as it was when the run began, whatever the
engine's writer commits meanwhile.

``async with March(...) as march: async for chunk in march: ...`` — leaving the block early (a
stop, an error) tells the thread to stop, takes what it still hands and waits for it to end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

from pipeline.engine.metadata import MetadataBuilder
from pipeline.engine.plan import Planned, RawItem, RawMeta, plan_changes, raw_items
from pipeline.keys import key_from_order, shard_of
from pipeline.sources import Source
from pipeline.state import State
from pipeline.state.raw import RawRow

#: Planned pairs handed from the march thread to the loop in chunks (fewer thread hops).
CHUNK = 128
_DONE = object()


class March:
    """One run's march thread and the chunks of planned pairs it hands over (see the module)."""

    def __init__(
        self,
        state: State,
        source: Source,
        metadata: MetadataBuilder,
        transform: str | None,
        *,
        shard: tuple[int, int] | None,
        stop: threading.Event,
        checksum: bool = False,
    ) -> None:
        self.state, self.source, self.metadata = state, source, metadata
        self.transform = transform
        self.shard = shard
        self.checksum = checksum
        #: Set by the engine (or on leaving the block early): the thread hands what it has and ends.
        self.stop = stop
        #: Keys found in step, counted as the march goes (final once the block is left).
        self.unchanged = 0
        self._bridge: asyncio.Queue[Any] = asyncio.Queue(maxsize=4)
        self._thread: threading.Thread | None = None
        self._ended = False

    async def __aenter__(self) -> March:
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, args=(loop,), name="facesync-march", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._ended:  # let the thread see the stop and hand its last chunk
            self.stop.set()
            while (await self._bridge.get()) is not _DONE:
                pass
            self._ended = True
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def __aiter__(self) -> AsyncIterator[list[Planned]]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[list[Planned]]:
        while (chunk := await self._bridge.get()) is not _DONE:
            if isinstance(chunk, BaseException):
                # the thread hands _DONE after it: __aexit__ takes it
                raise chunk
            yield chunk
        self._ended = True

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the thread: pair scan and state, hand only actionable pairs to the loop."""

        def hand(obj: object) -> None:
            asyncio.run_coroutine_threadsafe(self._bridge.put(obj), loop).result()

        rows = None
        try:
            signature, needs_sha256 = self._signature()
            rows = self.state.raw_rows(sha256=needs_sha256)  # its own read connection
            chunk: list[Planned] = []
            for planned in plan_changes(
                self._scan(), rows, rows.row, signature, self.transform, checksum=self.checksum
            ):
                if self.stop.is_set():
                    break
                if isinstance(planned, int):
                    self.unchanged += planned
                    continue
                chunk.append(planned)
                if len(chunk) >= CHUNK:
                    hand(chunk)
                    chunk = []
            if chunk and not self.stop.is_set():
                hand(chunk)
        except BaseException as exc:  # handed to the loop, raised there
            hand(exc)
        finally:
            if rows is not None:
                rows.close()
        hand(_DONE)

    def _scan(self) -> Iterator[RawItem]:
        raw = getattr(self.source, "scan_raw", None)  # a source that can scan without building objects
        items: Iterator[RawItem] = raw() if raw is not None else raw_items(self.source.scan())
        if self.shard is None:
            return items
        index, count = self.shard
        return (it for it in items if shard_of(key_from_order(it[0]), count) == index)

    def _signature(self) -> tuple[RawMeta, bool]:
        """The metadata signature on the march's raw entry and row, and whether it needs the rows'
        sha256. Without a template (the usual config) it is the sidecar's stamp alone: no key decoded,
        one constant for a file without one."""
        builder = self.metadata
        plain = builder.stamp_signature(None)
        if plain is None:

            def signature(it: RawItem, row: RawRow) -> str:
                key = key_from_order(it[0])
                return builder.signature(key, size=it[1], mtime_ns=it[2], sha256=row[7], sidecar=it[4])

            return signature, True
        stamped = builder.stamp_signature
        return (lambda it, row: plain if it[4] is None else stamped(it[4]) or plain), False
