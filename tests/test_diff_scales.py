"""Reconcile's diff grows with the listing, not with the listing times the state's other tables.

A listed image is looked up in the tombstones (an id recorded for deletion is not an orphan) and, in
two-pass mode, in ``orphans_seen`` (when it was first seen): by the id's text, as everywhere in the diff.
Without an index on that text each lookup reads the whole table, so 100,000 listed images against 1,000
tombstones took 10 s, and a million against a million remembered orphans would not end.

The work is counted in SQLite's own virtual-machine steps (a progress handler called every 100), not
timed: the same listing against an empty table and against a large one must cost about the same.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.state import State
from pipeline.state.listing import Listing

LISTED = 2_000
OTHERS = 2_000


def _steps(db: sqlite3.Connection, work: Callable[[], object]) -> int:
    """SQLite VM steps (in hundreds) that ``work`` costs on ``db``."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    db.set_progress_handler(tick, 100)
    try:
        work()
    finally:
        db.set_progress_handler(None, 100)
    return count


def _state(path: Path, *, tombstones: int = 0, seen: int = 0) -> State:
    state = State.open(path)
    db = state._db
    with db:
        db.executemany(
            "INSERT INTO tombstones (remote_id, key, reason, created_at) VALUES (?, NULL, 'gone', 0)",
            [(10_000_000 + i,) for i in range(tombstones)],
        )
        db.executemany(
            "INSERT INTO orphans_seen (remote_id, first_seen) VALUES (?, 0)",
            [(20_000_000 + i,) for i in range(seen)],
        )
    return state


def _listed(state: State) -> Listing:
    """``LISTED`` images no row holds, half without a token (doomed in SQL), half with one."""
    listing = state.listing()
    listing.start()
    listing.add([(str(i), i, None if i % 2 else f"t{i}", None) for i in range(1, LISTED + 1)])
    return listing


def _diff_steps(state: State) -> int:
    listing = _listed(state)
    try:
        return _steps(state._db, lambda: (listing.doom_tokenless(), list(listing.orphans())))
    finally:
        listing.close()


def _defer_steps(state: State) -> int:
    listing = _listed(state)
    try:
        listing.doom_tokenless()
        return _steps(state._db, lambda: listing.defer_young(time.time(), 3600, record=True))
    finally:
        listing.close()


@pytest.mark.parametrize(
    ("name", "measure", "table"),
    [
        ("the diff against the tombstones", _diff_steps, "tombstones"),
        ("two-pass mode against the orphans seen", _defer_steps, "seen"),
    ],
)
def test_the_diff_does_not_read_a_table_per_listed_image(
    tmp_path: Path, name: str, measure: Callable[[State], int], table: str
) -> None:
    empty = _state(tmp_path / "empty.db")
    large = _state(tmp_path / "large.db", **{table: OTHERS})
    try:
        alone, beside = measure(empty), measure(large)
    finally:
        empty.close()
        large.close()
    # Linear: the large table's own rows are read once at most (recording the orphans seen rewrites it);
    # a scan per listed image would be LISTED x OTHERS more, thousands of times as much.
    assert beside < 3 * alone + OTHERS, f"{name}: {beside} against {alone} (hundreds of VM steps)"
