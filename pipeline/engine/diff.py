"""The reconcile diff: what to adopt, delete and re-queue, from the listing and the state — in SQL.

The listing is a table (:mod:`pipeline.state.listing`); the state's side is read by queries, and
what is to be deleted goes to a scratch table, so memory does not grow with the collection. The rules,
in the words of docs/architecture.md ("Crash safety"):

- a listed image the state does not hold, carrying the token of an ``uploading`` row, is **adopted**
  (the first copy; that row becomes ``synced`` with its id; the image the row named before, if any,
  becomes a tombstone left for the next sync, which sees the file);
- further copies of a token, copies of a token a row holds an image for, and the copy of an earlier
  attempt of a key the state holds under another token are **duplicates** (provably ours and
  superseded: deleted, and not counted against ``max_delete``);
- every other image the state does not hold is an **orphan** (deleted, within the guard);
- a ``synced`` row whose id the listing lacks is **missing** (back to ``pending``), and an
  ``uploading`` row no listed image claims was never stored (back to ``pending``);
- where the listing shows no metadata nothing can be adopted: ``uploading`` rows go back to
  ``pending`` and their images are orphans — still exactly one image per file after the next sync.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from pipeline.keys import ImageId
from pipeline.probe.journal import STALE_AFTER, token_age
from pipeline.state import Row, Status, Tombstone
from pipeline.state.listing import CHUNK, Listed, Listing

ORPHAN = "orphan"
DUPLICATE = "duplicate"
#: The tombstone reason of an image an adopted upload replaced: the old version of a file whose content
#: reconcile cannot see (it may have gone back to that version since). Reconcile leaves it to the next
#: sync, which deletes it only after the file's content is stored again.
REPLACED_UNSEEN = "replaced, file not seen since"
#: Listed images that ``facesync probe`` added carry its token, kept in the token column with this mark:
#: a dead probe's (older than STALE_AFTER) are provably ours, deleted like duplicates; a running probe's
#: are left alone.
PROBE_MARK = "probe:"
_KEEP = "keep"


@dataclass
class Diff:
    """What reconcile will do: the small lists in memory, the large ones as counts (in SQL)."""

    adopt: list[Row] = field(default_factory=list)
    #: The images the adopted uploads replaced (their rows' previous ids): tombstones for the next sync.
    superseded: list[Tombstone] = field(default_factory=list)
    requeue_uploading: list[Row] = field(default_factory=list)
    #: Ids the state already meant to delete (tombstones, ``deleting`` rows) that are still listed.
    delete_known: list[ImageId] = field(default_factory=list)
    done_tombstones: list[ImageId] = field(default_factory=list)
    done_deleting: list[str] = field(default_factory=list)
    #: Synced rows whose image the listing lacks (re-queued by one UPDATE).
    missing: int = 0
    #: Listed images the state does not hold, and of them the orphans and the duplicates.
    orphans: int = 0
    delete_orphans: int = 0
    delete_duplicates: int = 0
    synced: int = 0


def verdict(
    image: Listed, uploading: dict[str, Row], adopted: dict[str, Row], now: float | None = None
) -> str | None:
    """What one listed image the state does not hold is: None (adopt it), a duplicate, an orphan, or
    (a running probe's image) one to keep.

    Pure; ``adopted`` is updated when the image is adopted.
    """
    now = time.time() if now is None else now
    token = image.token
    if token and token.startswith(PROBE_MARK):
        age = token_age(token.removeprefix(PROBE_MARK), now)
        return DUPLICATE if age is not None and age >= STALE_AFTER else _KEEP
    if token and token in uploading and token not in adopted:
        adopted[token] = replace(
            uploading[token], status=Status.SYNCED, remote_id=image.remote_id, message=None
        )
        return None
    if token and (token in adopted or image.owned or (image.key_held and image.key_token != token)):
        return DUPLICATE
    return ORPHAN


def classify(listing: Listing, *, has_metadata: bool) -> Diff:
    """The diff of the listing (already in its table) against the state; the images to delete are
    written to the listing's scratch table (:meth:`Listing.doomed`)."""
    tally = listing.tally()
    out = Diff(synced=tally.synced, missing=tally.missing)
    now = time.time()
    uploading = {r.token: r for r in listing.uploading() if r.token} if has_metadata else {}
    adopted: dict[str, Row] = {}
    doomed: list[tuple[str, ImageId, str]] = []
    # An image without a token is an orphan whatever the state holds (verdict() says so): those are
    # doomed in SQL, the rest judged one by one.
    out.orphans = listing.doom_tokenless() if tally.unheld else 0
    for image in listing.orphans() if tally.unheld else ():
        out.orphans += 1
        kind = verdict(image, uploading, adopted, now)
        if kind is None or kind == _KEEP:
            continue
        doomed.append((image.remote_text, image.remote_id, kind))
        if len(doomed) >= CHUNK:
            listing.doom(doomed)
            doomed = []
    listing.doom(doomed)
    out.delete_orphans = listing.doomed_count(ORPHAN)
    out.delete_duplicates = listing.doomed_count(DUPLICATE)
    out.adopt = sorted(adopted.values(), key=lambda r: r.key)
    before = {r.token: r.remote_id for r in uploading.values()}
    out.superseded = [
        Tombstone(remote_id=old, key=row.key, reason=REPLACED_UNSEEN, created_at=now)
        for row in out.adopt
        if (old := before.get(row.token)) is not None and str(old) != str(row.remote_id)
    ]
    taken = set(adopted)
    out.requeue_uploading = [r for r in listing.uploading() if not r.token or r.token not in taken]
    out.delete_known, out.done_deleting = listing.deleting()
    todo, out.done_tombstones = listing.tombstones(leave=REPLACED_UNSEEN)
    out.delete_known += todo
    return out
