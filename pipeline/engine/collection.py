"""Never upload into a collection the state does not know.

A state that has sent nothing yet (no synced, uploading or deleting row, no tombstone, and no
earlier run that started uploading: :data:`SENT` in its ``learned`` table) meets a collection that
should be empty of this archive's images. If the state file was lost (a new disk, a
new host, a container without its volume), a plain sync follows sharded ones, or ``--shard I/N``
changed N, the collection already holds them — and every upload would store a file a second time.
So before the first upload of such a state, one listing page is read; if it shows images (for a
shard: images whose key falls in the shard, or with no key, which belong to shard 0), the run stops
with :class:`~pipeline.errors.ForeignCollection` (exit 6) before anything is sent. ``facesync
reconcile --adopt`` rebuilds the state from the collection; ``sync --allow-foreign`` uploads anyway.

A state that has sent before is never asked again, even when it holds no image for a while (every
file deleted, an image left behind by a delete that failed): what it does not hold then is for
``reconcile`` to settle, not a sign that the state was lost.
"""

from __future__ import annotations

import asyncio

from pipeline.config import KEY_FIELD
from pipeline.engine.restore import Restorer
from pipeline.engine.runs import RunContext
from pipeline.errors import ForeignCollection, Retryable, ServiceFailing
from pipeline.keys import shard_of
from pipeline.state import Status

ADVICE = (
    "was the state file lost, or is this a new host? Rebuild the state from the collection with "
    "`facesync reconcile --adopt` (with the same --shard, if any), then sync; to upload anyway, "
    "`facesync sync --allow-foreign`"
)


#: Where a state remembers that a run of it started uploading (``State.learned``).
SENT = "sent"


class FirstUploadCheck:
    """Checks, once, before a state that has never sent an image uploads into the collection."""

    def __init__(
        self,
        ctx: RunContext,
        *,
        shard: tuple[int, int] | None,
        allowed: bool = False,
        remember: bool = True,
        restorer: Restorer | None = None,
    ) -> None:
        self.ctx = ctx
        #: A state that has sent before: the tail read for images it never issued (engine/settle.py).
        self.restorer = restorer
        self.shard = shard
        self._allowed = allowed
        #: Record in the state that it started uploading (not in a dry run, which keeps nothing).
        self._remember = remember
        self._done = False
        self._lock = asyncio.Lock()

    async def before_upload(self) -> None:
        """Return when uploading is safe; raise ForeignCollection when it is not (nothing sent)."""
        if self._done:
            return
        async with self._lock:
            if not self._done:
                if self._state_has_sent():
                    if self.restorer is not None:
                        await self.restorer.look()
                elif not self._allowed:
                    await self._check_collection()
                if self._remember and not self.ctx.state.learned(SENT):
                    self.ctx.state.learn(SENT, 1)
                self._done = True

    async def restore_check(self) -> None:
        """Read the tail now (a state known to be older than its collection), if the state has sent;
        a state that never has is checked at its first add, as always."""
        if self.restorer is not None and self._state_has_sent():
            await self.before_upload()

    def _state_has_sent(self) -> bool:
        state = self.ctx.state
        if state.learned(SENT):
            return True
        counts = state.counts()
        sent = (Status.SYNCED, Status.UPLOADING, Status.DELETING)
        return any(counts[s.value] for s in sent) or bool(state.tombstones())

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
        from pipeline.probe.journal import PROBE_FIELD  # here: a run that uploads nothing does not load it

        page = [image for image in page if not (image.metadata and PROBE_FIELD in image.metadata)]
        if not page:  # empty, or only `facesync probe`'s own images
            return
        where = f"the state {ctx.config.state.path} has never sent an image, but the collection holds some"
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
