"""Paging through the collection by offset, safely while others change it.

The listing call pages by offset, and offsets move when images are added or deleted during the
listing: a deletion before the current offset makes the next page start later than it should, and
the images in between are never seen — a synced file would look missing and be uploaded again.

So each page after the first starts a few images early (:data:`OVERLAP`): the images read again
anchor the page to what was already seen. A page that holds none of them has shifted past a gap
(more deletions since the last page than the overlap absorbs): the pager steps back a page and reads
again, until it finds ground it knows. Images are yielded once each (a window of the ids
seen last remembers them: memory does not grow with the collection). The extra cost is the overlap
(4 % more requests at 100 images a page), and one request per shift noticed (``Pager.backups``).

A short page is not the end (a service may cap ``limit``): only an empty page is, and an empty page
where the overlap should have been is read again a page earlier before the listing ends. Pages of
one image cannot overlap: such a listing cannot notice a shift.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import compress
from operator import not_
from typing import Any, Generic, TypeVar

#: Images each page re-reads from the end of the one before (at most a tenth of a page, at least one):
#: one detects a shift; each more absorbs one deletion between two page requests without a backup.
#: The cost is that share of extra requests (4 % at 100 a page).
OVERLAP = 4
#: Backups in a row after which the pager goes on forward: a safety stop against a collection that
#: keeps shrinking faster than it can be read (each backup reads a page earlier, down to offset 0).
MAX_BACKUPS = 64
#: Pages whose ids are remembered (at least MIN_WINDOW ids), so that pages read again after backups,
#: or shifted back by images added in front, yield nothing twice.
WINDOW_PAGES = MAX_BACKUPS + 2
MIN_WINDOW = 10_000

T = TypeVar("T")
#: ``fetch(offset, limit)``: one page of images, in whatever form the caller reads them.
Fetch = Callable[[int, int], Awaitable[list[T]]]


def image_id_text(image: Any) -> str:
    """The id of a :class:`~pipeline.api.answers.RemoteImage` as text: what the pager compares."""
    return str(image.id)


class _Recent:
    """The ids seen last: at least the last ``size`` (two generations of sets, so adding is one set
    insertion), to yield each image once in bounded memory."""

    def __init__(self, size: int) -> None:
        self._now: set[str] = set()
        self._before: set[str] = set()
        self._size = size

    def generations(self) -> tuple[set[str], set[str]]:
        """Both sets, for a caller that tests a whole page (a method call per id costs more)."""
        return self._now, self._before

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._now or image_id in self._before

    def __bool__(self) -> bool:
        return bool(self._now or self._before)

    def add(self, image_id: str) -> None:
        if len(self._now) >= self._size:
            self._before, self._now = self._now, set()
        self._now.add(image_id)

    def update(self, ids: list[str]) -> None:
        """:meth:`add` each; a page at a time in one set update while the generation has room."""
        if len(self._now) + len(ids) <= self._size:
            self._now.update(ids)
            return
        for image_id in ids:
            self.add(image_id)


class Pager(Generic[T]):
    """Reads a listing page by page with ``fetch(offset, limit)``, each image once, shifts noticed.

    ``id_of`` gives an image's id as text (an int and its digits are the same image): by default that of
    a ``RemoteImage``; reconcile pages the rows of its listing table (``id_of=itemgetter(0)``).
    """

    def __init__(
        self,
        fetch: Fetch[T],
        limit: int,
        overlap: int = OVERLAP,
        id_of: Callable[[T], str] = image_id_text,
    ) -> None:
        self.fetch = fetch
        self.id_of = id_of
        self.limit = limit
        self.overlap = max(0, min(overlap, limit - 1))
        window = max(WINDOW_PAGES * limit + overlap, MIN_WINDOW)
        #: Every id yielded lately: each image is yielded once.
        self._seen = _Recent(window)
        #: The ids of pages known to continue the listing without a gap (read from offset 0, or
        #: overlapping such a page): only these anchor the next page. Ids of a page that shifted past
        #: a gap are seen, but anchor nothing until a page read again without a gap holds them.
        self._ground = _Recent(window)
        #: Pages requested, and the extra ones spent reading again after a shift.
        self.requests = 0
        self.backups = 0

    async def pages(self) -> AsyncIterator[list[T]]:
        """The images not yet seen, page by page, until the listing ends.

        While a page is awaited the next one is already asked for, where it starts if this one is full,
        so the service works on it while this one is read and used (two requests in flight); a guess
        that a short page or a shift proves wrong is dropped. After a short page (likely the end) the
        next is asked for only when it is needed: a quiet listing spends one request on a wrong guess.
        """
        ahead: asyncio.Task[list[T]] | None = None
        ahead_at = -1
        try:
            offset, backups, longest, full = 0, 0, 0, False
            adrift: list[str] = []  # the ids of the last page that found no ground, in order
            while True:
                start = max(0, offset - self._overlap(longest)) if self._ground else 0
                if ahead is not None and ahead_at == start:
                    current = ahead
                else:
                    await _drop(ahead)
                    current = asyncio.ensure_future(self._read(start))
                ahead = None
                if full:
                    ahead_at = start + longest - self._overlap(longest)
                    ahead = asyncio.ensure_future(self._read(ahead_at))
                    if current.done():  # let the guess go out now, not once this page has been used
                        await asyncio.sleep(0)
                page = await current
                longest = max(longest, len(page))
                full = len(page) == longest
                ids = list(map(self.id_of, page))
                fresh, fresh_ids = self._unseen(page, ids)
                self._seen.update(fresh_ids)
                if fresh:
                    yield fresh
                anchored = start == 0 or any(i in self._ground for i in ids)
                if not anchored and self._overlap(longest) > 0 and backups < MAX_BACKUPS:
                    # Empty where the overlap should be (the collection shrank), or none of the overlap
                    # here (the offsets moved past a gap): read the page before again.
                    adrift = ids or adrift
                    offset, backups = self._back(start, backups)
                    continue
                self._ground.update(ids)
                end = start + len(page)
                joined = self._join(adrift, ids)
                if joined is not None:  # this page reaches the page that drifted: it is ground too
                    self._ground.update(adrift)
                    end = start + joined
                adrift = []
                if not page or (not fresh and end <= offset):
                    return  # an empty page, or nothing after what was seen: the end
                offset, backups = end, (0 if fresh else backups)
        finally:
            await _drop(ahead)

    def _unseen(self, page: list[T], ids: list[str]) -> tuple[list[T], list[str]]:
        """The images of ``page`` (and their ``ids``) not yet seen: found by two set intersections and
        C iterators, not a Python test per image (the overlap makes every page after the first hold
        some)."""
        now, before = self._seen.generations()
        seen = now.intersection(ids) | before.intersection(ids)
        if not seen:
            return page, ids
        new = list(map(not_, map(seen.__contains__, ids)))
        return list(compress(page, new)), list(compress(ids, new))

    def _overlap(self, longest: int) -> int:
        """How many images a page re-reads: at most a tenth of the longest page seen, at least one."""
        return min(self.overlap, max(longest // 10, 1), max(longest - 1, 0))

    @staticmethod
    def _join(adrift: list[str], ids: list[str]) -> int | None:
        """Where the page that drifted ends, counted from this page's start, when this page holds one
        of its ids (so nothing lies between them); None when it does not."""
        if not adrift:
            return None
        where = {i: n for n, i in enumerate(ids)}
        for k, image_id in enumerate(adrift):
            if image_id in where:
                return where[image_id] + len(adrift) - k
        return None

    async def _read(self, start: int) -> list[T]:
        self.requests += 1
        return await self.fetch(start, self.limit)

    def _back(self, start: int, backups: int) -> tuple[int, int]:
        """Where to read next after a shift: a page earlier (the overlap is added back by the caller)."""
        self.backups += 1
        return max(0, start - self.limit + self.overlap), backups + 1


async def _drop(task: asyncio.Task[list[Any]] | None) -> None:
    """A page requested ahead that is not wanted after all."""
    if task is not None and not task.done():
        task.cancel()
    if task is not None:
        with contextlib.suppress(BaseException):
            await task


async def find_end(fetch: Fetch[T], limit: int, guess: int = 0) -> tuple[int, dict[int, list[T]]]:
    """Where the listing ends (how many images it holds), found with a few offset probes, and the pages
    those probes read, by offset (the caller reads the last page from them when it is there).

    The first probe reads the page that ends at ``guess`` (the state's count of images it holds: often
    right, or near). A page with images there proves the end lies at or after ``offset + len(page)``;
    an empty one, at or before ``offset``. Growing the step (doubling) past what is known, then halving
    the interval between the two bounds down to a page, finds the end in O(log N) requests: two when
    the guess is right, about 2·log2(miss / limit) when it misses by ``miss`` images. A short page is
    the end once a page of ``limit`` images was seen, else once a probe where it ends is empty (a
    service may cap ``limit``: then the longest page seen is a page).
    """
    pages: dict[int, list[T]] = {}
    lo, hi = 0, -1  # the end is at or after lo; at or before hi once hi >= 0
    page_len, short_at, full_seen = max(1, limit), -1, False
    offset, step = max(0, guess - 1), max(1, limit)
    while True:
        page = pages[offset] = await fetch(offset, limit)
        n = len(page)
        if n:
            if offset == short_at:  # a short page was followed by more: the service caps pages there
                page_len = max(1, min(page_len, max(len(p) for o, p in pages.items() if o < offset and p)))
            lo = max(lo, offset + n)
            full_seen = full_seen or n >= limit
            if 0 <= hi <= lo or (n < limit and full_seen):  # a short page after a full one: the end
                return lo, pages
            if n < page_len:  # likely the end: one probe where it would be says
                offset = short_at = lo
                continue
            if hi < 0:  # grow past what is known
                offset, step = lo + step, step * 2
                continue
        else:
            hi = offset if hi < 0 else min(hi, offset)
            if lo >= hi:
                return lo, pages
            if lo == 0 and not any(pages.values()):  # nothing seen yet: shrink
                offset, step = max(0, hi - step), step * 2
                continue
        # Both bounds known: within a page, the page at lo holds the end; else halve.
        offset = lo if hi - lo <= page_len else (lo + hi) // 2
