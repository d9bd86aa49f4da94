"""Keys and ids: how a source key is ordered, shown and sharded, and what a remote image id is.

A key is ``/``-separated and relative to the source's root; a non-UTF-8 name is carried
surrogate-escaped (``os.fsdecode``), losslessly. Three forms of it exist, each made here only:

* :func:`key_order` — its raw bytes: the one order every stream is sorted by (SQLite's BINARY order
  of the stored BLOB), so the scan and the state rows merge-join;
* :func:`safe_key` — text fit for a terminal, a report or the image's metadata (undecodable bytes as
  ``\\xNN``); it is what a listing shows of a key, so reconcile and ``--shard`` compare in this form;
* :func:`shard_of` — the stable shard of the key, hashed in its metadata form.
"""

from __future__ import annotations

import hashlib

#: A remote image id, opaque and kept exactly as the service returned it (an int stays an int,
#: a str — even ``"42"`` — stays a str).
ImageId = int | str


def key_order(key: str) -> bytes:
    """The raw bytes of the key: the order every stream of keys is sorted by."""
    return key.encode("utf-8", "surrogateescape")


def key_from_order(raw: bytes) -> str:
    """The key whose :func:`key_order` is ``raw`` (the inverse, for keys read back from SQLite)."""
    return raw.decode("utf-8", "surrogateescape")


def safe_key(key: str) -> str:
    """The key as text: undecodable bytes shown as ``\\xNN``; the form metadata and messages carry."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def shard_of(key: str, shards: int) -> int:
    """The shard (0 .. shards-1) a key belongs to: a stable hash, the same on every host and run.

    Hashed in the form the key takes in metadata (:func:`safe_key`), so reconcile, which only sees
    metadata, puts every image in the same shard as sync did. ``key`` may be either form.
    """
    digest = hashlib.blake2b(safe_key(key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards
