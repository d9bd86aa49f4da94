"""The plan: a pure merge-join of the scan against the state rows (rclone's "march").

Both streams arrive sorted by :func:`~pipeline.keys.key_order`; one pass pairs them and says what each
key needs. No I/O and no event loop, so it is tested as a plain function and costs O(1) memory.

:func:`plan` is the rule, pair by pair, on objects. :func:`plan_changes` is what the engine runs: the
same pairs and actions on plain tuples, where a key in step (the nightly case: every key) is only
counted, so an unchanged archive costs a walk and a comparison per file and builds no object
(docs/performance.md). A property test holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn, TypeVar

from pipeline.keys import key_from_order, key_order
from pipeline.sources import SourceItem
from pipeline.state import Row, Status
from pipeline.state.raw import RawRow


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


def decide(item: SourceItem, row: Row, transform: str | None = None, *, checksum: bool = False) -> Action:
    """The action for a key present in both the scan and the state.

    ``transform`` is the signature of the transform settings in force (None: off). A row sent, or
    refused, under other settings is sent again: the settings are part of what is in step.

    A stat is unchanged when the size, the mtime and — where both sides have one — the ETag (for a
    directory, the ``ctime:inode`` stamp) are; a synced row recorded before the stamp was kept gets it
    recorded (a retouch, no read). ``checksum`` (``sync --checksum``) reads and hashes every synced
    file whatever its stat: a ``replace`` that an unchanged hash turns into nothing sent.
    """
    status = row.status
    if status in _RETRY:
        return Action.ADD
    if status is Status.DELETING:
        return Action.REPLACE
    both_etags = item.etag is not None and row.etag is not None
    unchanged = (
        item.size == row.size and item.mtime_ns == row.mtime_ns and (not both_etags or item.etag == row.etag)
    )
    same_transform = row.transform == transform
    if status in _REFUSED:
        return Action.SKIP if unchanged and same_transform else Action.ADD
    # SYNCED
    if not same_transform or checksum:
        return Action.REPLACE
    if unchanged:
        return Action.RETOUCH if item.etag is not None and row.etag is None else Action.SKIP
    if both_etags and item.etag == row.etag and item.size == row.size:
        return Action.RETOUCH
    return Action.REPLACE


def plan(
    scan: Iterable[SourceItem],
    rows: Iterable[Row],
    meta: Callable[[SourceItem, Row], str] | None = None,
    transform: str | None = None,
    *,
    checksum: bool = False,
) -> Iterator[Planned]:
    """Pair two key-sorted streams and yield one :class:`Planned` per key, in key order.

    ``meta(item, row)``, when given, is the signature of the metadata the item should carry now (a pure
    function: the template's output and the sidecar's stamp); a synced, unchanged file whose signature
    differs from ``row.meta_hash`` needs only a metadata update. ``transform`` is :func:`decide`'s.

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
            action = decide(item, row, transform, checksum=checksum)
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


#: A scan entry as :func:`plan_changes` reads it: a :class:`SourceItem`'s fields in order, the key as
#: its raw bytes — ``(key, size, mtime_ns, etag, sidecar, special)``; what ``LocalSource.scan_raw`` yields.
RawItem = tuple[bytes, int, int, str | None, str | None, str | None]
#: ``meta`` of :func:`plan_changes`: the signature an item's metadata should have now, from its entry and
#: its raw row (:data:`~pipeline.state.raw.RawRow`, which carries ``sha256``).
RawMeta = Callable[[RawItem, RawRow], str]
#: Keys in step counted before the count is yielded: the engine sees a stop within this many files.
COUNT_EVERY = 1024

_SYNCED = Status.SYNCED.value
_REFUSED_TEXT = frozenset(s.value for s in _REFUSED)


def raw_items(scan: Iterable[SourceItem]) -> Iterator[RawItem]:
    """A scan of :class:`SourceItem` as :func:`plan_changes` reads it (a source without a raw scan)."""
    return ((key_order(i.key), i.size, i.mtime_ns, i.etag, i.sidecar, i.special) for i in scan)


def plan_changes(
    scan: Iterable[RawItem],
    rows: Iterable[RawRow],
    load: Callable[[bytes], Row],
    meta: RawMeta | None = None,
    transform: str | None = None,
    *,
    checksum: bool = False,
) -> Iterator[Planned | int]:
    """:func:`plan` for the engine: the same keys and actions, but those in step are counted, not yielded.

    Yields, in key order, one :class:`Planned` for each key whose action is not ``SKIP`` — exactly those
    :func:`plan` yields, equal to them — and, between them, ints: how many keys were in step since the
    last yield (at most :data:`COUNT_EVERY` at a time), adding up to the number of pairs :func:`plan`
    yields as ``SKIP``. ``rows`` are raw rows in key order (``State.raw_rows``) and ``load(key)`` the
    whole :class:`Row` of one of them, called only for a key that needs work or is removed; a
    :class:`SourceItem` is built only then too. ``meta`` is :func:`plan`'s, on the raw entry and row;
    ``transform`` is :func:`decide`'s, compared with each row's as a string (no file is decoded).

    Raises ValueError when either stream is not strictly increasing by key, as :func:`plan` does.
    """
    items, states = iter(scan), iter(rows)
    it, r = next(items, None), next(states, None)
    in_step = 0
    while it is not None and r is not None:
        ik, rk = it[0], r[0]
        if ik == rk:
            # decide() == SKIP, and the metadata is current, without building anything: same size and
            # mtime, the same transform settings, the same ETag or change stamp (or none scanned: a row
            # without one takes the object path, which records it), and a synced row
            # (whose signature matches) or a refused one. Anything else takes the object path below.
            if (
                it[1] == r[1]
                and it[2] == r[2]
                and r[6] == transform
                and (it[3] == r[4] or it[3] is None)
                and not checksum
                and (
                    ((status := r[3]) == _SYNCED and (meta is None or meta(it, r) == r[5]))
                    or status in _REFUSED_TEXT
                )
            ):
                in_step += 1
                if in_step >= COUNT_EVERY:
                    yield in_step
                    in_step = 0
            else:
                planned = _pair(it, r, load, meta, transform, checksum)
                if planned is None:
                    in_step += 1
                else:
                    if in_step:
                        yield in_step
                        in_step = 0
                    yield planned
            # _advance, inlined: this is the path every file of a no-op run takes
            it, r = next(items, None), next(states, None)
            if it is not None and it[0] <= ik:
                _unsorted("scan", it[0], ik)
            if r is not None and r[0] <= rk:
                _unsorted("state", r[0], rk)
        elif ik < rk:
            if in_step:
                yield in_step
                in_step = 0
            yield _added(it)
            it = _advance(items, ik, "scan")
        else:
            if in_step:
                yield in_step
                in_step = 0
            yield _removed(rk, load)
            r = _advance(states, rk, "state")
    if in_step:
        yield in_step
    while it is not None:
        yield _added(it)
        it = _advance(items, it[0], "scan")
    while r is not None:
        yield _removed(r[0], load)
        r = _advance(states, r[0], "state")


def _pair(
    it: RawItem,
    r: RawRow,
    load: Callable[[bytes], Row],
    meta: RawMeta | None,
    transform: str | None,
    checksum: bool = False,
) -> Planned | None:
    """:func:`plan`'s answer for a key in both streams, on objects; None for ``SKIP``."""
    item = _item(it)
    row = load(r[0])
    action = decide(item, row, transform, checksum=checksum)
    if action is Action.SKIP and row.status is Status.SYNCED and meta is not None and meta(it, r) != r[5]:
        action = Action.METADATA
    return None if action is Action.SKIP else Planned(action, item.key, item, row)


def _item(it: RawItem) -> SourceItem:
    return SourceItem(key_from_order(it[0]), it[1], it[2], it[3], it[4], it[5])


def _added(it: RawItem) -> Planned:
    item = _item(it)
    return Planned(Action.ADD, item.key, item, None)


def _removed(key: bytes, load: Callable[[bytes], Row]) -> Planned:
    row = load(key)
    return Planned(Action.REMOVE, row.key, None, row)


_Raw = TypeVar("_Raw", RawItem, RawRow)


def _advance(stream: Iterator[_Raw], prev: bytes, name: str) -> _Raw | None:
    value = next(stream, None)
    if value is not None and value[0] <= prev:
        _unsorted(name, value[0], prev)
    return value


def _unsorted(name: str, key: bytes, prev: bytes) -> NoReturn:
    raise ValueError(
        f"plan: the {name} stream is not sorted by key_order: {key_from_order(key)!r} came after "
        f"{key_from_order(prev)!r}"
    )
