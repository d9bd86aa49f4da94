"""The plan: a pure merge-join of the scan against the state rows (rclone's "march").

Both streams arrive sorted by :func:`~pipeline.keys.key_order`; one pass pairs them and says what each
key needs. No I/O and no event loop, so it is tested as a plain function and costs O(1) memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from pipeline.keys import key_from_order, key_order
from pipeline.sources import SourceItem
from pipeline.state import Row, Status


class Action(StrEnum):
    """What the engine must do for one key."""

    ADD = "add"  # upload (new, or an earlier attempt did not finish)
    REPLACE = "replace"  # content may have changed: upload, then retire the old remote id
    RETOUCH = "retouch"  # only the stat changed (same etag): record it, no upload
    METADATA = "metadata"  # only the metadata changed (template or sidecar): PUT, no upload
    REMOVE = "remove"  # gone from the source
    SKIP = "skip"  # in step, or refused before and unchanged since


@dataclass(frozen=True, slots=True)
class Planned:
    """One key's action, with what the scan and the state know about it."""

    action: Action
    key: str
    item: SourceItem | None
    row: Row | None


T = TypeVar("T", SourceItem, Row)

_RETRY = frozenset({Status.PENDING, Status.FAILED, Status.UPLOADING})
_REFUSED = frozenset({Status.REJECTED, Status.SKIPPED})


def decide(item: SourceItem, row: Row) -> Action:
    """The action for a key present in both the scan and the state."""
    status = row.status
    if status in _RETRY:
        return Action.ADD
    if status is Status.DELETING:
        return Action.REPLACE
    both_etags = item.etag is not None and row.etag is not None
    unchanged = (
        item.size == row.size and item.mtime_ns == row.mtime_ns and (not both_etags or item.etag == row.etag)
    )
    if status in _REFUSED:
        return Action.SKIP if unchanged else Action.ADD
    # SYNCED
    if unchanged:
        return Action.SKIP
    if both_etags and item.etag == row.etag and item.size == row.size:
        return Action.RETOUCH
    return Action.REPLACE


def plan(
    scan: Iterable[SourceItem],
    rows: Iterable[Row],
    meta: Callable[[SourceItem, Row], str] | None = None,
) -> Iterator[Planned]:
    """Pair two key-sorted streams and yield one :class:`Planned` per key, in key order.

    ``meta(item, row)``, when given, is the signature of the metadata the item should carry now (a pure
    function: the template's output and the sidecar's stamp); a synced, unchanged file whose signature
    differs from ``row.meta_hash`` needs only a metadata update.

    Raises ValueError when either stream is not strictly increasing by ``key_order``: an unsorted input
    would silently turn into spurious adds and removes.
    """
    items = iter(scan)
    states = iter(rows)
    item, ik = _next(items, None, "scan")
    row, rk = _next(states, None, "state")
    while item is not None or row is not None:
        if row is None or (item is not None and ik < rk):
            assert item is not None
            yield Planned(Action.ADD, item.key, item, None)
            item, ik = _next(items, ik, "scan")
        elif item is None or rk < ik:
            yield Planned(Action.REMOVE, row.key, None, row)
            row, rk = _next(states, rk, "state")
        else:
            action = decide(item, row)
            stale = meta is not None and action is Action.SKIP and row.status is Status.SYNCED
            if stale and meta is not None and meta(item, row) != row.meta_hash:
                action = Action.METADATA
            yield Planned(action, item.key, item, row)
            item, ik = _next(items, ik, "scan")
            row, rk = _next(states, rk, "state")


def _next(stream: Iterator[T], prev: bytes | None, name: str) -> tuple[T | None, bytes]:
    value = next(stream, None)
    if value is None:
        return None, b""
    order = key_order(value.key)
    if prev is not None and order <= prev:
        raise ValueError(
            f"plan: the {name} stream is not sorted by key_order: {value.key!r} came after "
            f"{key_from_order(prev)!r}"
        )
    return value, order
