"""The reconcile diff: what to adopt, delete and re-queue, from a complete listing and the state rows.

Pure (no I/O), so it is tested as a plain function. The rules, in the words of
docs/architecture.md ("Crash safety"): an orphan carrying the token of an ``uploading`` row is
adopted; further copies of a token, and the copy of an earlier attempt of a key the state holds under
another token, are duplicates; every other orphan is deleted; a synced row whose id the listing
lacks, and an uploading row no orphan claims, go back to pending. Where the listing carries no
metadata nothing can be adopted: uploading rows go back to pending and their orphans are deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pipeline.api import RemoteImage
from pipeline.config import KEY_FIELD, TOKEN_FIELD
from pipeline.keys import ImageId, safe_key
from pipeline.state import Row, Status


@dataclass
class Diff:
    """What reconcile will do, computed purely from the listing and the state rows."""

    adopt: list[Row] = field(default_factory=list)
    requeue_missing: list[Row] = field(default_factory=list)
    requeue_uploading: list[Row] = field(default_factory=list)
    delete_orphans: list[ImageId] = field(default_factory=list)
    delete_duplicates: list[ImageId] = field(default_factory=list)
    #: Ids the state already meant to delete (tombstones, ``deleting`` rows) that still exist.
    delete_known: list[ImageId] = field(default_factory=list)
    done_tombstones: list[ImageId] = field(default_factory=list)
    done_deleting: list[str] = field(default_factory=list)
    orphans: int = 0
    synced: int = 0


def id_key(image_id: ImageId) -> str:
    """Compare ids across int/str renderings without losing the original value."""
    return str(image_id)


def _our_stale_copy(image: RemoteImage, token: str, keys: dict[str, str | None]) -> bool:
    """An earlier add attempt of a key the state still holds under a later token (or none).

    A crash or a lost answer can leave the copy of an attempt whose row has since moved on (the file
    changed, so the next attempt took a fresh token). The state holds the key, so the copy is provably
    ours and superseded: a duplicate, not a foreign orphan. An empty or lost state holds no key, so
    this never makes a whole collection deletable.
    """
    key = image.metadata.get(KEY_FIELD) if isinstance(image.metadata, dict) else None
    return isinstance(key, str) and key in keys and keys[key] != token


def diff(listing: Iterable[RemoteImage], rows: Iterable[Row], tombstones: Iterable[ImageId]) -> Diff:
    """The pure diff of a complete listing against the state (no I/O)."""
    remote: dict[str, RemoteImage] = {}
    for image in listing:
        remote.setdefault(id_key(image.id), image)
    has_metadata = any(image.metadata is not None for image in remote.values())
    out = Diff()
    held: set[str] = set()
    uploading: dict[str, Row] = {}
    token_owner: dict[str, Row] = {}
    keys: dict[str, str | None] = {}  # the key as our metadata names it → the row's current token
    for row in rows:
        keys[safe_key(row.key)] = row.token
        if row.status is Status.DELETING:
            if row.remote_id is not None and id_key(row.remote_id) in remote:
                out.delete_known.append(row.remote_id)
                held.add(id_key(row.remote_id))
            else:
                out.done_deleting.append(row.key)
            continue
        if row.status is Status.UPLOADING:
            if row.token:
                uploading[row.token] = row
            if row.remote_id is not None:  # a replace in flight: the old id is still ours
                held.add(id_key(row.remote_id))
            continue
        if row.remote_id is None:
            continue
        held.add(id_key(row.remote_id))
        if row.token:
            token_owner[row.token] = row
        if row.status is Status.SYNCED:
            out.synced += 1
            if id_key(row.remote_id) not in remote:
                out.requeue_missing.append(row)
    for tomb in tombstones:
        if id_key(tomb) in remote and id_key(tomb) not in held:
            out.delete_known.append(tomb)
            held.add(id_key(tomb))
        else:
            out.done_tombstones.append(tomb)
    adopted: set[str] = set()
    for key, image in remote.items():
        if key in held:
            continue
        out.orphans += 1
        token = image.metadata.get(TOKEN_FIELD) if isinstance(image.metadata, dict) else None
        if isinstance(token, str) and token in uploading and token not in adopted:
            adopted.add(token)
            out.adopt.append(
                replace(uploading[token], status=Status.SYNCED, remote_id=image.id, message=None)
            )
        elif isinstance(token, str) and (
            token in adopted or token in token_owner or _our_stale_copy(image, token, keys)
        ):
            out.delete_duplicates.append(image.id)
        else:
            out.delete_orphans.append(image.id)
    for token, row in uploading.items():
        if token not in adopted:
            out.requeue_uploading.append(row)
    if not has_metadata:
        out.adopt = []
        out.requeue_uploading = list(uploading.values())
    return out


def slim(image: RemoteImage, *, whole: bool = False) -> RemoteImage:
    """What the diff reads of a listed image: its id and the two fields facesync wrote — or, ``whole``,
    also its url and all its metadata, for an image that names a file (``reconcile --adopt``)."""
    meta = image.metadata
    if meta is None:
        return RemoteImage(id=image.id)
    if whole and KEY_FIELD in meta:
        return RemoteImage(id=image.id, url=image.url, metadata=meta)
    return RemoteImage(id=image.id, metadata={k: meta[k] for k in (TOKEN_FIELD, KEY_FIELD) if k in meta})
