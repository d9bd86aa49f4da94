"""What the probe reads of the listing: pages, where the collection ends, and the images it knows.

Every page the probe reads goes through :meth:`Listing.page`, which keeps what the pages show: the
largest page, whether items carry metadata, the ids listed before the probe added anything (never
its to delete), the probe's own images (by the ids its adds were answered, or by its token in their
metadata: a copy whose answer was lost) and the images earlier probes left (a token the journal
knows, or one older than :data:`~pipeline.probe.journal.STALE_AFTER`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from pipeline.api.answers import RemoteImage
from pipeline.api.probing import ProbeClient
from pipeline.keys import ImageId
from pipeline.probe.journal import PROBE_FIELD, STALE_AFTER, token_age

#: The largest listing page asked for.
PROBE_PAGE = 1000
#: Listing requests before the adds: pages in a row, then a search for the collection's end.
LIST_PAGES = 4
LIST_SEEK = 4


class Listing:
    """The pages one probe reads, and what they showed."""

    def __init__(
        self, client: ProbeClient, token: str, tokens: Collection[str], now: Callable[[], float]
    ) -> None:
        self.client, self.token, self.tokens, self.now = client, token, tokens, now
        self.page_seen = 0
        #: The most images a page returns (a short page that was not the last), when one was seen.
        self.page_cap: int | None = None
        #: Whether items carry metadata (None: no item said either way).
        self.metadata: bool | None = None
        #: Where the collection ended before the adds; and whether every page up to it was read.
        self.end: int | None = None
        self.whole = False
        self.before: dict[str, ImageId] = {}
        self.leftovers: dict[str, ImageId] = {}
        self.young: set[str] = set()
        #: The probe's ids as its adds were answered; its images as listed, and where.
        self.added: list[ImageId] = []
        self.ours: dict[str, ImageId] = {}
        self.ours_at: dict[str, int] = {}
        #: Offsets read to find its images (read again to see them gone).
        self.looked: list[int] = []

    async def page(self, offset: int) -> list[RemoteImage]:
        """One page of :data:`PROBE_PAGE` at ``offset``, noted."""
        page = await self.client.list_page(offset, PROBE_PAGE)
        self.page_seen = max(self.page_seen, len(page))
        for at, image in enumerate(page, start=offset):
            self._saw(image, at)
        return page

    def _saw(self, image: RemoteImage, at: int) -> None:
        key, meta = str(image.id), image.metadata
        tag = meta.get(PROBE_FIELD) if meta is not None else None
        if meta is not None and self.metadata is None:
            self.metadata = True
        if key in {str(i) for i in self.added} or tag == self.token:
            self.ours[key], self.ours_at[key] = image.id, at
            if meta is None:
                self.metadata = False
            return
        if not self.added:
            self.before[key] = image.id
        if tag is None:
            return
        age = token_age(tag, self.now())
        if tag in self.tokens or age is None or age > STALE_AFTER:
            self.leftovers[key] = image.id
        else:
            self.young.add(key)

    async def survey(self) -> None:
        """Before the adds: the page cap, where the collection ends (and the images on the way)."""
        first = await self.page(0)
        offset = len(first)
        for _ in range(LIST_PAGES - 1):
            if offset == 0:
                break
            page = await self.page(offset)
            if not page:
                break
            if self.page_cap is None and len(first) < PROBE_PAGE:
                self.page_cap = len(first)
            offset += len(page)
        else:
            await self._seek_end(offset)
            return
        self.end, self.whole = offset, True

    async def _seek_end(self, lo: int) -> None:
        """Find the collection's end past ``lo`` (images exist before it) in a few pages."""
        full = self.page_cap or self.page_seen
        hi: int | None = None
        for _ in range(LIST_SEEK):
            at = lo * 2 if hi is None else (lo + hi) // 2
            page = await self.page(at)
            if page and len(page) < full:
                self.end = at + len(page)
                return
            if page:
                lo = at + len(page)
            else:
                hi = at
            if hi is not None and hi <= lo:
                self.end = lo
                return

    async def find_ours(self) -> str | None:
        """Where the probe's images are listed: first, or where the collection ended; the order."""
        shown = await self.look(0)
        if self._missing() and self.ours_at:
            await self.look(shown)
        elif self._missing() and self.end:
            at = max(0, self.end - max(0, min(5, self.page_seen - len(self.added) - 1)))
            at += await self.look(at)
            if self._missing():
                await self.look(at)
        where = [self.ours_at[str(i)] for i in self.added if str(i) in self.ours_at]
        if len(where) >= 2:
            return "oldest_first" if where[0] < where[-1] else "newest_first"
        if len(where) == 1 and self.end:
            return "newest_first" if where[0] == 0 else "oldest_first"
        return None

    def _missing(self) -> bool:
        return any(str(i) not in self.ours_at for i in self.added)

    async def look(self, offset: int) -> int:
        """Read the page at ``offset`` to find the probe's images; how many images it held."""
        self.looked.append(offset)
        return len(await self.page(offset))

    async def still_there(self, keys: Collection[str]) -> set[str]:
        """Which of ``keys`` (ids as text) the pages looked at show again."""
        self.ours, self.ours_at, self.leftovers = {}, {}, {}
        for offset in self.looked:
            await self.page(offset)
        return set(keys) & (self.ours.keys() | self.leftovers.keys())
