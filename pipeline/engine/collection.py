"""Never upload into a collection the state does not know.

A state that has sent nothing yet (no synced, uploading or deleting row, no tombstone) meets a
collection that should be empty of this archive's images. If the state file was lost (a new disk, a
new host, a container without its volume), a plain sync follows sharded ones, or ``--shard I/N``
changed N, the collection already holds them — and every upload would store a file a second time.
So before the first upload of such a state, one listing page is read; if it shows images (for a
shard: images whose key falls in the shard, or with no key, which belong to shard 0), the run stops
with :class:`~pipeline.errors.ForeignCollection` (exit 6) before anything is sent. ``facesync
reconcile --adopt`` rebuilds the state from the collection; ``sync --allow-foreign`` uploads anyway.
"""

from __future__ import annotations

import asyncio

from pipeline.config import KEY_FIELD
from pipeline.engine.runs import RunContext
from pipeline.errors import ForeignCollection, Retryable, ServiceFailing
from pipeline.keys import shard_of
from pipeline.probe.journal import PROBE_FIELD
from pipeline.state import Status

ADVICE = (
    "was the state file lost, or is this a new host? Rebuild the state from the collection with "
    "`facesync reconcile --adopt` (with the same --shard, if any), then sync; to upload anyway, "
    "`facesync sync --allow-foreign`"
)


class FirstUploadCheck:
    """Checks, once, before a state that knows no image uploads into the collection."""

    def __init__(self, ctx: RunContext, *, shard: tuple[int, int] | None, allowed: bool = False) -> None:
        self.ctx = ctx
        self.shard = shard
        self._done = allowed
        self._lock = asyncio.Lock()

    async def before_upload(self) -> None:
        """Return when uploading is safe; raise ForeignCollection when it is not (nothing sent)."""
        if self._done:
            return
        async with self._lock:
            if not self._done:
                if not self._state_knows_images():
                    await self._check_collection()
                self._done = True

    def _state_knows_images(self) -> bool:
        counts = self.ctx.state.counts()
        sent = (Status.SYNCED, Status.UPLOADING, Status.DELETING)
        return any(counts[s.value] for s in sent) or bool(self.ctx.state.tombstones())

    async def _check_collection(self) -> None:
        ctx = self.ctx
        try:
            page = await ctx.client.list_page(0, ctx.config.api.page_size)
        except ServiceFailing:
            raise
        except Retryable as exc:
            raise ServiceFailing(
                f"cannot check that the collection is empty before the first upload: {exc}", sent=False
            ) from None
        page = [image for image in page if not (image.metadata and PROBE_FIELD in image.metadata)]
        if not page:  # empty, or only `facesync probe`'s own images
            return
        where = f"the state {ctx.config.state.path} knows no image, but the collection holds some"
        if self.shard is None:
            raise ForeignCollection(f"refusing to upload: {where} ({len(page)} on its first page): {ADVICE}")
        index, count = self.shard
        if all(image.metadata is None for image in page):
            raise ForeignCollection(
                f"refusing to upload: {where}, and its listing shows no metadata, so which are shard "
                f"{index}/{count}'s cannot be told: {ADVICE}"
            )
        keys = [image.metadata.get(KEY_FIELD) if image.metadata else None for image in page]
        mine = sum(1 for key in keys if (shard_of(key, count) if isinstance(key, str) else 0) == index)
        if mine:
            raise ForeignCollection(
                f"refusing to upload: {where} ({mine} of the {len(page)} on its first page belong to "
                f"shard {index}/{count}): {ADVICE}"
            )
