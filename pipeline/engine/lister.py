"""Reconcile's listing: the whole collection read page by page into the state's ``listing`` table.

Shift-safe paging (:mod:`pipeline.api.paging`): each page is written as it arrives, while the service
works on the next, and a listing that fails part-way is an error, not a listing — the
:class:`~pipeline.engine.reconcile.Reconciler` then changes nothing. A row keeps what the diff reads
(id, token, key) and, only to adopt or in a dry run, the url and metadata; with ``--shard`` only the
shard's images are kept, so the listing must show metadata.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

from pipeline.api import FaceSearchClient
from pipeline.api.paging import Pager
from pipeline.config import KEY_FIELD, TOKEN_FIELD
from pipeline.engine.deletes import listed_metadata, listed_url
from pipeline.engine.diff import PROBE_MARK
from pipeline.errors import ConfigError, Rejected, Retryable
from pipeline.keys import shard_of
from pipeline.output.reporter import Reporter
from pipeline.probe.journal import PROBE_FIELD
from pipeline.state.rows import canonical_json

if TYPE_CHECKING:
    from pipeline.state.listing import Listing

#: One row of the ``listing`` table: remote_text, remote_id, token, key (and to adopt, url and metadata
#: JSON).
ListedRow = tuple[Any, ...]


class Lister:
    """One reconcile's listing of the collection into ``listing`` (:meth:`Listing.add`)."""

    def __init__(
        self,
        client: FaceSearchClient,
        listing: Listing,
        reporter: Reporter,
        *,
        page_size: int,
        shard: tuple[int, int] | None,
        adopt: bool,
        dry_run: bool,
    ) -> None:
        self.client, self.listing, self.reporter, self.page_size = client, listing, reporter, page_size
        self.shard, self.adopt, self.dry_run = shard, adopt, dry_run
        #: Listed images that showed metadata (whether the service lists it at all).
        self._shown = 0

    async def run(self) -> tuple[int, bool]:
        """The whole listing into the ``listing`` table, or an error (nothing is then changed); each page
        is written as it arrives, while the service works on the next. Returns how many images were listed
        (each id once) and whether any showed metadata."""
        self.listing.start()
        seen = 0
        shard = self.shard
        pager = Pager(self._page, self.page_size, id_of=itemgetter(0))
        try:
            async for rows in pager.pages():
                seen += len(rows)
                if shard is not None:  # the pager sees every image; the table only this shard's
                    rows = [r for r in rows if _shard(r[3], shard[1]) == shard[0]]
                self.listing.add(rows)
        except (Retryable, Rejected) as exc:
            raise Retryable(
                f"listing failed after {seen} image(s): {exc}; nothing was deleted or re-queued", sent=True
            ) from None
        if shard is not None and seen and not self._shown:
            raise ConfigError(
                "reconcile --shard needs a listing that shows metadata (the service's does not): "
                "run reconcile without --shard"
            )
        listed = self.listing.count()
        shifts = f", {pager.backups} page(s) read again after the listing shifted" if pager.backups else ""
        self.reporter.note(f"listed {listed} remote image(s){shifts}")
        return listed, self._shown > 0

    async def _page(self, offset: int, limit: int) -> list[ListedRow]:
        """One listing page (:meth:`~pipeline.api.FaceSearchClient.list_items`) as rows of the table: the
        pager reads their ids (``remote_text`` first), so no image is read twice over."""
        return self._rows(await self.client.list_items(offset, limit))

    def _rows(self, page: list[dict[str, Any]]) -> list[ListedRow]:
        """A page as rows of the ``listing`` table (metadata and url only to adopt, or in a dry run, which
        names them); counts the images that showed metadata."""
        rows: list[ListedRow] = []
        append = rows.append
        shown = 0
        adopt, dry_run = self.adopt, self.dry_run
        if not (adopt or dry_run):  # a nightly run, inline: once per listed image
            for item in page:
                image_id, meta = item["id"], item.get("metadata")
                if meta is None:
                    append((str(image_id), image_id, None, None))
                    continue
                shown += 1
                token, key = meta.get(TOKEN_FIELD), meta.get(KEY_FIELD)
                if token is None and type(probe := meta.get(PROBE_FIELD)) is str:
                    token = PROBE_MARK + probe
                append(
                    (
                        str(image_id),
                        image_id,
                        token if type(token) is str else None,
                        key if type(key) is str else None,
                    )
                )
            self._shown += shown
            return rows
        for item in page:
            image_id, url, listed = item["id"], item.get("url"), item.get("metadata")
            shown += listed is not None
            meta = listed or {}
            key = meta.get(KEY_FIELD)
            key = key if isinstance(key, str) else None
            token = meta.get(TOKEN_FIELD)
            if token is None and type(probe := meta.get(PROBE_FIELD)) is str:
                token = PROBE_MARK + probe
            kept: tuple[str | None, str | None] = (None, None)
            if adopt and key is not None:  # what the adopter reads, whole
                kept = (url, canonical_json(meta))
            elif dry_run:  # what the dry run names beside the image, bounded
                kept = (listed_url(url), None if listed is None else listed_metadata(listed))
            append((str(image_id), image_id, token if isinstance(token, str) else None, key, *kept))
        self._shown += shown
        return rows


def _shard(key: str | None, count: int) -> int:
    """The shard of a listed image: that of the key its metadata names, or 0 (an image added by hand)."""
    return shard_of(key, count) if key is not None else 0
