"""The plan's merge-join: plain function calls on lists, no event loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.engine.plan import (
    COUNT_EVERY,
    Action,
    Planned,
    RawItem,
    RawMeta,
    decide,
    plan,
    plan_changes,
    raw_items,
)
from pipeline.keys import key_from_order
from pipeline.sources import SourceItem, key_order
from pipeline.state import Row, Status
from pipeline.state.raw import RawRow


def item(key: str, size: int = 10, mtime_ns: int = 100, etag: str | None = None) -> SourceItem:
    return SourceItem(key, size, mtime_ns, etag)


def row(key: str, status: Status = Status.SYNCED, size: int = 10, mtime_ns: int = 100, **kw: object) -> Row:
    return Row(key, size, mtime_ns, status, **kw)  # type: ignore[arg-type]


def actions(scan: list[SourceItem], rows: list[Row]) -> list[tuple[Action, str]]:
    return [(p.action, p.key) for p in plan(scan, rows)]


def test_empty_inputs_plan_nothing() -> None:
    assert list(plan([], [])) == []


def test_new_item_is_added_and_missing_item_is_removed_with_what_is_known() -> None:
    new, old = item("b"), row("a")
    assert list(plan([new], [old])) == [
        Planned(Action.REMOVE, "a", None, old),
        Planned(Action.ADD, "b", new, None),
    ]


def test_interleaved_streams_are_paired_by_key() -> None:
    scan = [item("a"), item("c"), item("d"), item("f")]
    rows = [row("b"), row("c"), row("e"), row("f", size=11)]
    assert actions(scan, rows) == [
        (Action.ADD, "a"),
        (Action.REMOVE, "b"),
        (Action.SKIP, "c"),
        (Action.ADD, "d"),
        (Action.REMOVE, "e"),
        (Action.REPLACE, "f"),
    ]


def test_pairs_carry_both_item_and_row() -> None:
    i, r = item("a", size=11), row("a")
    assert list(plan([i], [r])) == [Planned(Action.REPLACE, "a", i, r)]


def test_keys_are_compared_by_bytes_so_a_dash_file_sorts_before_a_folder() -> None:
    scan = [item("a-c"), item("a/b")]
    rows = [row("a-c"), row("a/b")]
    assert actions(scan, rows) == [(Action.SKIP, "a-c"), (Action.SKIP, "a/b")]


def test_non_utf8_keys_merge_by_their_raw_bytes() -> None:
    keys = sorted(["\udcff.jpg", "z.jpg", "é.jpg"], key=key_order)
    assert keys == ["z.jpg", "é.jpg", "\udcff.jpg"]
    assert actions([item(k) for k in keys], [row(k) for k in keys]) == [(Action.SKIP, k) for k in keys]


@pytest.mark.parametrize(
    ("scanned", "stored", "expected"),
    [
        # synced
        (item("k"), row("k"), Action.SKIP),
        (item("k", etag="e"), row("k", etag="e"), Action.SKIP),
        # a row from before change stamps were kept records the scanned one (no read)
        (item("k", etag="e"), row("k"), Action.RETOUCH),
        (item("k"), row("k", etag="e"), Action.SKIP),
        (item("k", etag="e2"), row("k", etag="e"), Action.REPLACE),
        (item("k", mtime_ns=200, etag="e"), row("k", etag="e"), Action.RETOUCH),
        (item("k", mtime_ns=200), row("k"), Action.REPLACE),
        (item("k", size=11), row("k"), Action.REPLACE),
        (item("k", size=11, etag="e"), row("k", etag="e"), Action.REPLACE),
        (item("k", mtime_ns=200, etag="e"), row("k"), Action.REPLACE),
        # refused earlier: not retried until the file changes
        (item("k"), row("k", Status.REJECTED), Action.SKIP),
        (item("k"), row("k", Status.SKIPPED), Action.SKIP),
        (item("k", size=11), row("k", Status.REJECTED), Action.ADD),
        (item("k", mtime_ns=200), row("k", Status.SKIPPED), Action.ADD),
        (item("k", etag="e2"), row("k", Status.REJECTED, etag="e"), Action.ADD),
        # unfinished: always added again
        (item("k"), row("k", Status.PENDING), Action.ADD),
        (item("k"), row("k", Status.FAILED), Action.ADD),
        (item("k"), row("k", Status.UPLOADING), Action.ADD),
        (item("k", size=11), row("k", Status.UPLOADING), Action.ADD),
        # a removal in flight, but the file is back
        (item("k"), row("k", Status.DELETING), Action.REPLACE),
    ],
)
def test_decide_for_a_key_in_both_streams(scanned: SourceItem, stored: Row, expected: Action) -> None:
    assert decide(scanned, stored) == expected


def test_uploading_row_is_handed_to_the_engine_with_its_token() -> None:
    r = row("k", Status.UPLOADING, token="tok")
    assert list(plan([item("k")], [r])) == [Planned(Action.ADD, "k", item("k"), r)]


def test_every_row_without_an_item_is_removed_whatever_its_status() -> None:
    rows = [row(s.value, s) for s in Status]
    rows.sort(key=lambda r: key_order(r.key))
    assert actions([], rows) == [(Action.REMOVE, r.key) for r in rows]


@pytest.mark.parametrize("which", ["scan", "state"])
def test_unsorted_input_raises(which: str) -> None:
    scan = [item("b"), item("a")] if which == "scan" else [item("a")]
    rows = [row("b"), row("a")] if which == "state" else []
    with pytest.raises(ValueError, match=f"the {which} stream is not sorted"):
        list(plan(scan, rows))


def test_a_duplicate_key_is_unsorted_input() -> None:
    with pytest.raises(ValueError, match="not sorted"):
        list(plan([item("a"), item("a")], []))


def test_plan_is_lazy_and_streams() -> None:
    def endless():
        n = 0
        while True:
            yield item(f"{n:012d}")
            n += 1

    out = plan(endless(), iter([]))
    assert [next(out).key for _ in range(3)] == ["000000000000", "000000000001", "000000000002"]


keys = st.text(alphabet=st.sampled_from("ab/-.é\udcff"), min_size=1, max_size=6)


@given(st.sets(keys), st.sets(keys), st.data())
def test_every_key_appears_once_in_sorted_order(
    scan_keys: set[str], row_keys: set[str], data: st.DataObject
) -> None:
    statuses = st.sampled_from(list(Status))
    scan = [item(k, size=data.draw(st.integers(0, 2))) for k in sorted(scan_keys, key=key_order)]
    rows = [row(k, data.draw(statuses)) for k in sorted(row_keys, key=key_order)]
    out = list(plan(scan, rows))
    assert [p.key for p in out] == sorted(scan_keys | row_keys, key=key_order)
    for p in out:
        assert (p.item is not None, p.row is not None) == (p.key in scan_keys, p.key in row_keys)
        assert p.item is None or p.item.key == p.key
        assert p.row is None or p.row.key == p.key
        if p.item is None:
            assert p.action is Action.REMOVE
        elif p.row is None:
            assert p.action is Action.ADD
        else:
            assert p.action == decide(p.item, p.row)


@given(st.lists(keys, min_size=2, unique=True))
def test_any_out_of_order_scan_raises(ks: list[str]) -> None:
    ordered = sorted(ks, key=key_order)
    shuffled = [ordered[-1], *ordered[:-1]]
    with pytest.raises(ValueError):
        list(plan([item(k) for k in shuffled], []))


# -- plan_changes: the engine's march, on raw tuples ---------------------------------------------------


def raw_item(i: SourceItem) -> RawItem:
    return (key_order(i.key), i.size, i.mtime_ns, i.etag, i.sidecar, i.special)


def raw_row(r: Row) -> RawRow:
    return (key_order(r.key), r.size, r.mtime_ns, r.status.value, r.etag, r.meta_hash, r.transform, r.sha256)


def changes(
    scan: list[SourceItem],
    rows: list[Row],
    meta: RawMeta | None = None,
    loaded: list[str] | None = None,
    transform: str | None = None,
) -> tuple[list[Planned], int]:
    """plan_changes on raw copies of ``scan`` and ``rows``: the Planned it yields, and the counts' sum."""
    whole = {key_order(r.key): r for r in rows}

    def load(key: bytes) -> Row:
        if loaded is not None:
            loaded.append(key_from_order(key))
        return whole[key]

    out = list(plan_changes([raw_item(i) for i in scan], [raw_row(r) for r in rows], load, meta, transform))
    planned = [p for p in out if isinstance(p, Planned)]
    return planned, sum(n for n in out if isinstance(n, int))


def test_plan_changes_counts_keys_in_step_and_yields_the_rest_as_plan_does() -> None:
    scan = [item("a"), item("b", size=11), item("c"), item("e"), item("f")]
    rows = [row("a"), row("b"), row("c", Status.REJECTED), row("d"), row("f", Status.PENDING)]
    planned, in_step = changes(scan, rows)
    assert planned == [p for p in plan(scan, rows) if p.action is not Action.SKIP]
    assert [(p.action, p.key) for p in planned] == [
        (Action.REPLACE, "b"),
        (Action.REMOVE, "d"),
        (Action.ADD, "e"),
        (Action.ADD, "f"),
    ]
    assert in_step == 2


def test_plan_changes_reads_a_whole_row_only_for_a_key_that_needs_work() -> None:
    scan = [item(f"{n:03d}") for n in range(50)] + [item("new")]
    rows = [row(f"{n:03d}") for n in range(50)]
    rows[7] = row("007", size=99)
    rows[9] = row("009", Status.SKIPPED)
    loaded: list[str] = []
    planned, in_step = changes(scan, [*rows, row("old")], loaded=loaded)
    assert (in_step, [(p.action, p.key) for p in planned]) == (
        49,
        [(Action.REPLACE, "007"), (Action.ADD, "new"), (Action.REMOVE, "old")],
    )
    assert loaded == ["007", "old"]


def test_plan_changes_compares_the_metadata_signature_of_synced_rows_only() -> None:
    scan = [item("a"), item("b"), item("c")]
    rows = [row("a", meta_hash="|"), row("b", meta_hash="old"), row("c", Status.REJECTED, meta_hash="old")]

    def meta(it: RawItem, r: RawRow) -> str:
        return "|"

    planned, in_step = changes(scan, rows, meta)
    assert ([(p.action, p.key) for p in planned], in_step) == ([(Action.METADATA, "b")], 2)


def test_other_transform_settings_resend_synced_rows_and_retry_refused_ones() -> None:
    """A row records the transform settings it was sent (or refused) under: other settings are a
    replace of a synced image and a new try of a refused file, found by comparing that string alone."""
    scan = [item("a"), item("b"), item("c"), item("d"), item("e")]
    rows = [
        row("a", transform="t1"),
        row("b", transform=None),
        row("c", Status.SKIPPED, transform=None),
        row("d", Status.REJECTED, transform="t1"),
        row("e", etag="x", mtime_ns=5, transform=None),
    ]
    scan[4] = item("e", etag="x")
    planned, in_step = changes(scan, rows, transform="t1")
    assert ([(p.action, p.key) for p in planned], in_step) == (
        [(Action.REPLACE, "b"), (Action.ADD, "c"), (Action.REPLACE, "e")],
        2,
    )
    planned, in_step = changes(scan, rows)  # the transform off: only what was sent with it
    assert [(p.action, p.key) for p in planned] == [
        (Action.REPLACE, "a"),
        (Action.ADD, "d"),
        (Action.RETOUCH, "e"),
    ]
    assert in_step == 2


def test_plan_changes_hands_on_counts_in_bounded_steps() -> None:
    """So the engine sees a stop (Ctrl-C) within COUNT_EVERY files, even in a run with nothing to do."""
    n = 2 * COUNT_EVERY + 5
    scan = [item(f"{k:06d}") for k in range(n)]
    rows = [row(f"{k:06d}") for k in range(n)]
    load = {key_order(r.key): r for r in rows}.__getitem__
    out = list(plan_changes([raw_item(i) for i in scan], [raw_row(r) for r in rows], load))
    assert out == [COUNT_EVERY, COUNT_EVERY, 5]


@pytest.mark.parametrize("which", ["scan", "state"])
def test_plan_changes_raises_on_unsorted_input(which: str) -> None:
    scan = [item("a"), item("c"), item("b")] if which == "scan" else [item("a"), item("c")]
    rows = [row("a"), row("c"), row("b")] if which == "state" else [row("a")]
    with pytest.raises(ValueError, match=f"the {which} stream is not sorted"):
        changes(scan, rows)


def test_raw_items_turns_a_scan_into_the_raw_form() -> None:
    scanned = [SourceItem("a/\udcff.jpg", 3, 4, "etag", "1-2", None), SourceItem("b", 1, 2, special="fifo")]
    assert list(raw_items(scanned)) == [
        ("a/\udcff.jpg".encode("utf-8", "surrogateescape"), 3, 4, "etag", "1-2", None),
        (b"b", 1, 2, None, None, "fifo"),
    ]


raw_fields = st.fixed_dictionaries(
    {
        "size": st.integers(0, 1),
        "mtime_ns": st.integers(0, 1),
        "etag": st.sampled_from([None, "e1", "e2"]),
        "sidecar": st.sampled_from([None, "5-6"]),
        "special": st.sampled_from([None, None, "a FIFO, not a regular file"]),
    }
)
row_fields = st.fixed_dictionaries(
    {
        "status": st.sampled_from(list(Status)),
        "size": st.integers(0, 1),
        "mtime_ns": st.integers(0, 1),
        "etag": st.sampled_from([None, "e1", "e2"]),
        "meta_hash": st.sampled_from([None, "|", "|5-6", "x|"]),
        "sha256": st.sampled_from([None, "s"]),
        "transform": st.sampled_from([None, "t1", "t2"]),
    }
)


@given(st.sets(keys), st.sets(keys), st.data(), st.booleans(), st.sampled_from([None, "t1"]))
def test_plan_changes_agrees_with_plan_on_any_input(
    scan_keys: set[str], row_keys: set[str], data: st.DataObject, with_meta: bool, transform: str | None
) -> None:
    """The fast path is an optimisation, never a rule of its own: same actions, same pairs, same SKIPs."""
    scan = [SourceItem(k, **data.draw(raw_fields)) for k in sorted(scan_keys, key=key_order)]
    rows = [Row(k, **data.draw(row_fields)) for k in sorted(row_keys, key=key_order)]

    def meta(i: SourceItem, r: Row) -> str:  # depends on the sidecar and the row's hash, as a template's may
        return f"{r.sha256 or ''}|{i.sidecar or ''}"

    def raw_meta(it: RawItem, r: RawRow) -> str:
        return f"{r[7] or ''}|{it[4] or ''}"

    expected = list(plan(scan, rows, meta if with_meta else None, transform))
    planned, in_step = changes(scan, rows, raw_meta if with_meta else None, transform=transform)
    assert planned == [p for p in expected if p.action is not Action.SKIP]
    assert in_step == sum(p.action is Action.SKIP for p in expected)
