"""``transform:`` in the engine: what is sent for each file, prepared off the event loop; the size it
must fit; the signature each row records; the guard on a change of the settings (docs/transform.md).

The image work itself is :mod:`pipeline.engine.pixels` (Pillow, pillow-heif), imported when the first
image is prepared: a run with the transform off, or a no-op run with it on, loads neither. It runs in
a pool of threads sized to the cores the process may use (Pillow releases the GIL while it works), so
while images are prepared the uploads already prepared keep flowing.

A row records the :func:`signature` of the settings its image was sent with, and the march compares
it as a string: a change of the settings re-sends every image (old versions deleted, as for any
replaced image), counted and refused beyond ``limits.max_delete`` before anything is sent
(:func:`guard_change`). The metadata keeps the original's key, size and sha256, so renames,
``search`` and ``reconcile --adopt`` work on the files as they are.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

from pipeline.config import Config, TransformConfig
from pipeline.config.profile import body_for_image, image_for_body
from pipeline.engine.deletes import guard_deletes
from pipeline.engine.runs import RunContext, RunOptions
from pipeline.errors import Rejected, Skipped
from pipeline.output.reporter import Reporter
from pipeline.state import State, Status

T = TypeVar("T")

#: Bumped when the image work changes what it makes of the same file and settings: every image is
#: then sent again, like after a change of the settings.
VERSION = 1
#: Where the signature the state's images were last sent with is remembered (``State.learned``).
LEARNED = "transform"
#: Where the smallest add body the service refused as too large (HTTP 413) is remembered.
LEARNED_BODY = "add_body_refused"
#: After a 413, images are fitted this far under the largest image the refused body could carry.
REFUSED_MARGIN = 0.8


def signature(settings: TransformConfig) -> str | None:
    """The settings as a row records them, None when the transform is off; every setting that changes
    what is sent is in it, and :data:`VERSION`."""
    if not settings.enabled:
        return None
    convert = ",".join(settings.convert) or "none"
    return f"v{VERSION} {settings.format} q{settings.quality} {settings.max_side}px convert={convert}"


def read_limit(config: Config) -> int:
    """The largest file read: with the transform on, the original may be larger than what is sent."""
    return config.transform.max_source_bytes if config.transform.enabled else config.limits.max_image_bytes


def cores() -> int:
    """The CPUs this process may run on (its affinity, which a container or a pinned job narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Transformer:
    """What one run sends for each file: the file itself, or it transformed in the pool (started and
    stopped with the run: ``async with Transformer(config, state) as t``)."""

    def __init__(self, config: Config, state: State | None = None) -> None:
        self.settings = config.transform
        self.signature = signature(config.transform)
        self.read_limit = read_limit(config)
        self._state = state
        self._most = config.limits.max_image_bytes  # within the measured body limit (config/profile.py)
        refused = state.learned(LEARNED_BODY) if state is not None and self.enabled else None
        self._refused: int | None = refused if isinstance(refused, int) and refused > 0 else None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    @property
    def limit(self) -> int:
        """The most bytes an image may have when sent: ``limits.max_image_bytes`` (the measured body
        limit already in it) and, once the service refused a body as too large, under that body."""
        if self._refused is None:
            return self._most
        return max(1, min(self._most, int(image_for_body(self._refused) * REFUSED_MARGIN)))

    async def __aenter__(self) -> Transformer:
        if self.enabled:
            self._pool = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="facesync-image")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:  # what runs finishes (each under a second); what waits is dropped
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def prepare(self, data: bytes, kind: str) -> bytes:
        """What to send for the file ``data`` of format ``kind``: ``data`` itself when the transform is
        off or the file needs no change, else it transformed (:func:`pipeline.engine.pixels.prepare`,
        whose Skipped it raises)."""
        if self._pool is None:
            return data
        from pipeline.engine import pixels

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, pixels.prepare, data, kind, self.settings, self.limit)

    async def send(
        self,
        add: Callable[[bytes], Awaitable[T]],
        data: bytes,
        kind: str,
        payload: bytes,
        key: str,
        reporter: Reporter,
    ) -> tuple[T, bytes]:
        """``add(payload)``, and what was sent; while the service refuses the body as too large (HTTP
        413) and the transform can make the file smaller, it is sent again smaller. Raises the last
        refusal when it cannot."""
        while True:
            try:
                return await add(payload), payload
            except Rejected as refusal:
                smaller = await self.smaller(refusal, data, kind, payload)
                if smaller is None:
                    raise
                reporter.event("re-encoded", key, f"{refusal}: sending {len(smaller)} bytes instead")
                payload = smaller

    async def smaller(self, refusal: Rejected, data: bytes, kind: str, sent: bytes) -> bytes | None:
        """After the service refused the add of ``sent`` as too large (HTTP 413): ``data`` prepared again
        under the refused body (lower quality, then smaller side), or None when the refusal stands (the
        transform is off, another refusal, or it cannot be made smaller)."""
        if self._pool is None or refusal.http_status != 413:
            return None
        self.refused(body_for_image(len(sent)))
        try:
            again = await self.prepare(data, kind)
        except Skipped:
            return None
        return again if len(again) < len(sent) else None

    def refused(self, body: int) -> None:
        """An add body of ``body`` bytes was refused as too large: fit every image under it from now on,
        in this run and the next (``learned``)."""
        if self._refused is None or body < self._refused:
            self._refused = body
            if self._state is not None:
                self._state.learn(LEARNED_BODY, body)


def guard_change(ctx: RunContext, options: RunOptions, current: str | None) -> None:
    """Before a sync sends anything: when the transform settings are not those the state's images were
    last sent with, count the images sent otherwise — each will be sent again and its old version
    deleted — and refuse (GuardRefused, exit 5) beyond the max-delete guard. One lookup when nothing
    changed (every nightly run); a dry run applies the guard and remembers nothing."""
    state, wanted = ctx.state, current or ""
    if (state.learned(LEARNED) or "") == wanted:
        return
    stale = state.synced_with_other_transform(current)
    guard_deletes(
        stale,
        threshold=ctx.config.limits.max_delete,
        synced=state.counts()[Status.SYNCED.value],
        override=options.max_delete,
        what="image(s) sent with other transform settings (each is sent again, then its old version deleted)",
        advice="The transform: settings changed; if that is meant",
        verb="would replace",
        reporter=ctx.reporter,
    )
    if stale:
        ctx.reporter.note(f"transform settings changed: {stale} image(s) are sent again and replaced")
    if not options.dry_run:
        state.learn(LEARNED, wanted)
