"""The plan's merge-join: plain function calls on lists, no event loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.engine.plan import Action, Planned, decide, plan
from pipeline.sources import SourceItem, key_order
from pipeline.state import Row, Status


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
        (item("k", etag="e"), row("k"), Action.SKIP),
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
