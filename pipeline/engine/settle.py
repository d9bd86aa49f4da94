"""Settling uncertainty from the end of the listing: a sync heals what earlier nights left unsure.

An add whose answer was lost may have stored its image once, twice or not at all; its token stays in
the state's ``unsettled`` table (``docs/state.md``) until a listing shows what it left. Such images are
the newest in the collection. On a service that lists oldest first (``facesync probe`` measures
``list_order``) they are at the end: :func:`~pipeline.api.paging.find_end` finds it with a few offset
probes, and :class:`Tail` reads pages backwards from there — gap-free while others delete (a deletion
before a page moves images towards the pages still to read, never past them) or add (at the end,
after what is read) — until a page holds an *anchor*: an image this state holds whose row was written
before the oldest unsettled add was sent, so stored before it, so before every copy it may have
left. Newest first, the head is read forward (the shift-safe pager) to the same anchor. The read stops
at :data:`MAX_PAGES`: what it cannot reach is left to ``facesync reconcile``, said so.

Per unsettled token, in that window (:meth:`Settler.settle_one`): the row that sent it keeps one copy
(its own, or the first when its answer was lost: adopted), every other copy is a duplicate; no copy
at all puts a lost upload back to ``pending`` (this run sends it). Duplicates become tombstones — the
same durable intent, the same delete path and 404 rule as every delete — and the sync's removals
delete them at its end. An id any row or tombstone holds is never deleted. A token is settled only in
a complete window, in the same commit as what it decided.

The same window tells, before a run's first add, whether the state is older than its collection (a
state restored from a backup): images with a facesync token the state never issued, for a key it is
about to send: :class:`pipeline.engine.restore.Restorer` (through ``FirstUploadCheck``) hands them to
the upload, which restores the row from the image whose ``facesync_sha256`` is the file's (no upload)
or replaces them.

A service whose order is unknown (no profile), or whose listing carries no metadata, cannot be
settled this way: the run says so and leaves it to reconcile (exit 1 while anything is unsettled).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from pipeline.api import RemoteImage
from pipeline.api.paging import Fetch, Pager, find_end
from pipeline.config import TOKEN_FIELD, Config
from pipeline.engine.runs import RunContext
from pipeline.errors import Retryable, ServiceFailing
from pipeline.output.summary import SyncReport
from pipeline.state import Row, Status, Tombstone, Unsettled, Writer

#: Pages the window reads at most (after the few probes that find the end): 10,000 images at 100 a page.
MAX_PAGES = 100
#: Why a tombstone of a second copy exists (``tombstones.reason``).
DUPLICATE = "duplicate of an upload whose answer was lost"
OLDEST_FIRST, NEWEST_FIRST = "oldest_first", "newest_first"


def listing_order(config: Config) -> tuple[str | None, str]:
    """The order the service lists in, as far as it is known, and, when it is not, why."""
    service = config.service
    if service is not None and service.list_metadata is False:
        return None, "the service's listing carries no metadata (the service profile says so)"
    if service is not None and service.list_order in (OLDEST_FIRST, NEWEST_FIRST):
        return service.list_order, ""
    if config.api.embedded:
        return OLDEST_FIRST, ""  # the embedded emulator's own order, unless a profile says otherwise
    return None, "the service's listing order is not known (run `facesync probe` to measure it)"


def token_of(image: RemoteImage) -> str | None:
    meta = image.metadata
    token = meta.get(TOKEN_FIELD) if meta else None
    return token if isinstance(token, str) else None


class Tail:
    """The newest images of the collection, read once per run and shared by whoever needs them."""

    def __init__(self, ctx: RunContext, order: str, *, max_pages: int = MAX_PAGES) -> None:
        self.ctx = ctx
        self.order = order
        self.max_pages = max_pages
        #: Images read so far, newest first, each id once.
        self.images: list[RemoteImage] = []
        self._seen: set[str] = set()
        #: Each page read, and how many of ``images`` there are up to its end.
        self._pages: list[tuple[list[RemoteImage], int]] = []
        self._reader: _Reader | None = None
        self._lock = asyncio.Lock()
        #: Requests spent (probes and pages).
        self.requests = 0

    async def window(self, enough: Callable[[list[RemoteImage]], bool]) -> tuple[list[RemoteImage], bool]:
        """The images from the newest back to the first page for which ``enough(page)`` is true, and
        whether that page was reached (False: the listing's start or :data:`MAX_PAGES` came first —
        at the start, everything was read, which is complete too)."""
        async with self._lock:
            for page, upto in self._pages:
                if enough(page):
                    return self.images[:upto], True
            if self._reader is None:
                self._reader = await self._start()
            while True:
                got = await self._reader.next()
                if got is None:
                    return list(self.images), self._reader.at_start
                fresh = [i for i in got if str(i.id) not in self._seen]
                self._seen.update(str(i.id) for i in fresh)
                self.images.extend(fresh)
                self._pages.append((got, len(self.images)))
                if enough(got):
                    return list(self.images), True

    async def _start(self) -> _Reader:
        client, limit = self.ctx.client, self.ctx.config.api.page_size

        async def fetch(offset: int, size: int) -> list[RemoteImage]:
            self.requests += 1
            return await client.list_page(offset, size)

        if self.order == NEWEST_FIRST:
            return _HeadReader(Pager(fetch, limit), self.max_pages)
        count, probed = await find_end(fetch, limit, self.ctx.state.held_count())
        return _TailReader(fetch, limit, count, probed, self.max_pages)


class _Reader:
    at_start = False

    async def next(self) -> list[RemoteImage] | None:
        raise NotImplementedError


class _TailReader(_Reader):
    """Pages backwards from the end of an oldest-first listing (see the module for why none is missed)."""

    def __init__(
        self,
        fetch: Fetch[RemoteImage],
        limit: int,
        count: int,
        probed: dict[int, list[RemoteImage]],
        max_pages: int,
    ) -> None:
        self.fetch, self.limit, self.probed, self.left = fetch, limit, probed, max_pages
        self.offset = max(0, count - limit)
        self.done = count == 0
        self.at_start = self.done

    async def next(self) -> list[RemoteImage] | None:
        while not self.done and self.left > 0:
            offset = self.offset
            page = self.probed.pop(offset, None)
            if page is None:
                self.left -= 1
                page = await self.fetch(offset, self.limit)
            self.done = offset == 0
            self.at_start = self.done
            self.offset = max(0, offset - self.limit)
            if page or self.done:
                return list(page)
            # Empty: the end moved back since it was found (others deleted): a page earlier.
        return None


class _HeadReader(_Reader):
    """Pages forward from the head of a newest-first listing, through the shift-safe pager."""

    def __init__(self, pager: Pager[RemoteImage], max_pages: int) -> None:
        self.pages = pager.pages()
        self.left = max_pages

    async def next(self) -> list[RemoteImage] | None:
        if self.left <= 0:
            return None
        self.left -= 1
        try:
            return await anext(self.pages)
        except StopAsyncIteration:
            self.at_start = True  # the whole listing was read
            self.left = 0
            return None


@dataclass
class Settled:
    """What settling one token decided: the changes to commit, and what it counts."""

    put: list[Row] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    duplicates: int = 0


class Settler:
    """Settles the state's unsettled adds from the tail of the listing, at a sync's start."""

    def __init__(self, ctx: RunContext, tail: Tail | None, report: SyncReport, *, dry_run: bool) -> None:
        self.ctx, self.tail, self.report, self.dry_run = ctx, tail, report, dry_run

    async def run(self, writer: Writer, why_not: str) -> None:
        """Settle what the tail shows, or say why it cannot be read."""
        state, reporter = self.ctx.state, self.ctx.reporter
        entries = state.unsettled()
        if not entries:
            return
        if self.tail is None:
            reporter.note(
                f"{len(entries)} earlier upload(s) still unsettled: {why_not}; "
                "`facesync reconcile` settles them"
            )
            return
        since = min(e.since for e in entries)
        try:
            window, complete = await self.tail.window(
                lambda page: state.stored_before([i.id for i in page], since)
            )
        except ServiceFailing:
            raise
        except Retryable as exc:
            reporter.note(
                f"{len(entries)} earlier upload(s) still unsettled: reading the listing's end failed: {exc}"
            )
            return
        if not complete:
            reporter.note(
                f"{len(entries)} earlier upload(s) still unsettled: the newest {len(window)} images do not "
                "reach back to them; `facesync reconcile` settles them"
            )
            return
        if window and all(image.metadata is None for image in window):
            reporter.note(f"{len(entries)} earlier upload(s) still unsettled: the listing shows no metadata")
            return
        copies: dict[str, list[RemoteImage]] = {}
        for image in reversed(window):  # oldest first: the first copy is the one stored first
            token = token_of(image)
            if token is not None:
                copies.setdefault(token, []).append(image)
        held = state.held_ids(i.id for e in entries for i in copies.get(e.token, ()))
        now = time.time()
        out = Settled()
        for entry in entries:
            self.settle_one(entry, copies.get(entry.token, []), held, now, out)
        self.report.settled += len(entries)
        self.report.duplicates_removed += out.duplicates
        if self.dry_run:
            for t in out.tombstones:
                reporter.event("would delete", t.key or "(image)", f"remote id {t.remote_id}: {t.reason}")
            return
        await writer.commit(
            put=out.put, tombstones_add=out.tombstones, unsettled_done=[e.token for e in entries]
        )
        for t in out.tombstones:
            reporter.event(
                "duplicate", t.key or "(image)", f"remote id {t.remote_id} deleted at the run's end"
            )

    def settle_one(
        self, entry: Unsettled, found: Sequence[RemoteImage], held: set[str], now: float, out: Settled
    ) -> None:
        """One token: keep the copy its row holds (or adopt the first), the rest become tombstones."""
        row = self.ctx.state.get(entry.key)
        keep: RemoteImage | None = None
        if row is not None and row.token == entry.token:
            mine = [i for i in found if row.remote_id is not None and str(i.id) == str(row.remote_id)]
            keep = mine[0] if mine else (found[0] if found else None)
            out.put.extend(self._row_after(row, keep, now, out))
        for image in found:
            if image is keep or str(image.id) in held:
                continue
            out.tombstones.append(Tombstone(image.id, entry.key, DUPLICATE, now))
            out.duplicates += 1

    def _row_after(self, row: Row, keep: RemoteImage | None, now: float, out: Settled) -> list[Row]:
        """The row once its token is settled: its image found (adopted if the answer was lost), or none."""
        if keep is None:
            if row.status in (Status.SYNCED, Status.UPLOADING):  # nothing stored: this run sends it
                return [
                    replace(row, status=Status.PENDING, message="its upload was not stored", updated_at=now)
                ]
            return []
        if row.remote_id is not None and str(row.remote_id) == str(keep.id):
            return []  # its own image, as recorded
        if row.remote_id is not None:  # the image it replaced (or one no longer listed) goes
            out.tombstones.append(Tombstone(row.remote_id, row.key, "replaced", now))
        if row.status is Status.DELETING:
            out.tombstones.append(Tombstone(keep.id, row.key, "removed", now))
            return []
        return [
            replace(
                row,
                status=Status.SYNCED,
                remote_id=keep.id,
                code=None,
                message=None,
                attempts=0,
                updated_at=now,
            )
        ]
