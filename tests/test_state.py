"""The SQLite state store, on real files under tmp_path."""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import pipeline.state.schema as state_mod
from pipeline.errors import StateError
from pipeline.sources import key_order
from pipeline.state import APPLICATION_ID, SCHEMA_VERSION, Row, State, Status, Tombstone
from pipeline.state.listing import listing_path
from pipeline.state.rows import BY_REMOTE_ID


@pytest.fixture
def state(tmp_path: Path):
    with State.open(tmp_path / "state" / "s.db") as st:
        yield st


def row(key: str, status: Status = Status.SYNCED, **kw: object) -> Row:
    base: dict[str, object] = {"size": 10, "mtime_ns": 1_000, "updated_at": 1.0}
    base.update(kw)
    return Row(key, status=status, **base)  # type: ignore[arg-type]


def test_open_creates_parent_dirs_and_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "s.db"
    with State.open(path) as st:
        st.put_many([row("x")])
        assert st.path == path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "a" / "b" / "s.db-wal").stat().st_mode) == 0o600


def test_open_sets_wal_application_id_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    State.open(path).close()
    db = sqlite3.connect(path)
    got = [
        db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("journal_mode", "application_id", "user_version")
    ]
    db.close()
    assert got == ["wal", APPLICATION_ID, SCHEMA_VERSION]


def test_open_without_create_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"s\.db: no such file"):
        State.open(tmp_path / "s.db", create=False)
    assert not (tmp_path / "s.db").exists()


def test_reopen_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with State.open(path) as st:
        st.put_many([row("a"), row("b")])
    with State.open(path, create=False) as st:
        assert list(st.iter_rows()) == [row("a"), row("b")]


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"hello, I am a text file\n" * 10)
    with pytest.raises(StateError, match=r"s\.db: not an SQLite database"):
        State.open(path)
    assert path.read_bytes() == b"hello, I am a text file\n" * 10


def test_a_corrupt_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    before = path.read_bytes()
    with pytest.raises(StateError, match=str(path)):
        State.open(path)
    assert path.read_bytes() == before


def test_a_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StateError, match=r"foreign SQLite database"):
        State.open(path)
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    State.open(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match=rf"schema version {SCHEMA_VERSION + 1} is newer"):
        State.open(path)


def test_put_then_get_round_trips_every_field(state: State) -> None:
    full = Row(
        "dir/a.jpg", 123, 456_789, Status.UPLOADING, etag="e", sha256="ab" * 32, remote_id=7, token="tok",
        meta_hash="mh", attempts=2, code=3, message="why", updated_at=12.5,
    )  # fmt: skip
    state.put_many([full])
    assert state.get("dir/a.jpg") == full
    assert state.get("missing") is None


def test_remote_id_keeps_int_and_str_apart(state: State) -> None:
    state.put_many([row("a", remote_id=42), row("b", remote_id="42"), row("c", remote_id="abc"), row("d")])
    got = [(r.key, r.remote_id, type(r.remote_id)) for r in state.iter_rows()]
    assert got == [("a", 42, int), ("b", "42", str), ("c", "abc", str), ("d", None, type(None))]


def test_a_row_is_found_by_its_remote_id_through_the_one_id_index_int_and_str_apart(
    state: State, tmp_path: Path
) -> None:
    state.put_many([row("a", remote_id=42), row("b", remote_id="42"), row("c", Status.DELETING, remote_id=7)])
    state.put_many([row("d", Status.DELETING, remote_id="7")])
    assert {k: r.key for k, r in state.by_remote_ids([42, "abc"]).items()} == {"42": "a"}
    assert {k: r.key for k, r in state.by_remote_ids(["42"]).items()} == {"42": "b"}
    state.forget_deleting(["7"])
    assert [r.key for r in state.iter_rows()] == ["a", "b", "c"]
    # each answer wrote two indexes on the remote id; the state keeps the one on its text
    db = sqlite3.connect(state.path)
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    plan = db.execute(f"EXPLAIN QUERY PLAN SELECT key FROM items WHERE {BY_REMOTE_ID}", (1, 1)).fetchall()
    db.close()
    assert "items_remote_id" not in names and "items_remote_text" in names
    assert "USING INDEX items_remote_text" in plan[0][-1]


def test_an_older_state_loses_its_second_id_index_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with State.open(path) as st:
        st.put_many([row("a", remote_id=42)])
    db = sqlite3.connect(path)
    db.execute("CREATE INDEX items_remote_id ON items (remote_id) WHERE remote_id IS NOT NULL")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    db.commit()
    db.close()
    with State.open(path) as st:
        assert [r.key for r in st.by_remote_ids([42]).values()] == ["a"]
    db = sqlite3.connect(path)
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    assert ("items_remote_id" in names, version) == (False, SCHEMA_VERSION)


def test_put_many_upserts_whole_rows(state: State) -> None:
    state.put_many([row("a", Status.UPLOADING, token="t1")])
    state.put_many([row("a", Status.SYNCED, remote_id=5)])
    assert list(state.iter_rows()) == [row("a", Status.SYNCED, remote_id=5)]


def test_zero_updated_at_is_stamped_with_now(state: State) -> None:
    before = time.time()
    state.put_many([Row("a", 1, 1, Status.PENDING)])
    got = state.get("a")
    assert got is not None and before <= got.updated_at <= time.time()


def test_iter_rows_is_in_key_order_bytes_not_unicode_order(state: State) -> None:
    keys = ["a/b", "a-c", "é", "z", "\udcff.jpg", "A", "a"]
    state.put_many([row(k) for k in keys])
    assert [r.key for r in state.iter_rows()] == sorted(keys, key=key_order)


def test_rows_filters_by_status_and_counts_cover_every_status(state: State) -> None:
    state.put_many([row("a"), row("b", Status.FAILED), row("c", Status.FAILED), row("d", Status.REJECTED)])
    assert [r.key for r in state.rows(Status.FAILED)] == ["b", "c"]
    assert [r.key for r in state.rows()] == ["a", "b", "c", "d"]
    assert state.counts() == {
        "pending": 0, "uploading": 0, "synced": 1, "rejected": 1, "skipped": 0, "failed": 2, "deleting": 0,
    }  # fmt: skip


def test_counts_of_counts_the_rows_of_each_status_asked_in_its_order(state: State) -> None:
    state.put_many([row("a"), row("b", Status.FAILED), row("c", Status.FAILED), row("d", Status.PENDING)])
    assert state.counts_of((Status.UPLOADING, Status.PENDING, Status.FAILED)) == {
        "uploading": 0, "pending": 1, "failed": 2,
    }  # fmt: skip
    assert list(state.counts_of([Status.SYNCED, Status.DELETING]).items()) == [("synced", 1), ("deleting", 0)]


def test_delete_many_removes_only_those_keys(state: State) -> None:
    state.put_many([row("a"), row("b"), row("c")])
    state.delete_many(["a", "c", "nope"])
    assert list(state.iter_rows()) == [row("b")]


def test_apply_writes_rows_deletes_and_tombstones_together(state: State) -> None:
    state.put_many([row("old"), row("gone", remote_id=1)])
    state.apply(
        put=[row("new", remote_id=2)],
        delete=["gone"],
        tombstones_add=[Tombstone(1, "gone", "removed", 5.0), Tombstone("x9", None, "orphan", 6.0)],
    )
    assert list(state.iter_rows()) == [row("new", remote_id=2), row("old")]
    assert state.tombstones() == [Tombstone(1, "gone", "removed", 5.0), Tombstone("x9", None, "orphan", 6.0)]
    state.apply(tombstones_done=[1])
    assert state.tombstones() == [Tombstone("x9", None, "orphan", 6.0)]


def test_an_answer_writes_what_it_changes_and_a_row_without_its_intent_whole(state: State) -> None:
    intent = row("a", Status.UPLOADING, sha256="s" * 64, token="t1", attempts=2, message="was", code=5)
    state.put_many([intent])
    synced = replace(intent, status=Status.SYNCED, remote_id=7, code=None, message=None, attempts=0)
    lost = row("b", remote_id="x1", token="t2")  # its intent is not in the state: put whole
    state.apply(answered=[synced, lost], tombstones_add=[Tombstone(3, "a", "replaced", 5.0)])
    assert list(state.iter_rows()) == [synced, lost]
    assert state.tombstones() == [Tombstone(3, "a", "replaced", 5.0)]
    with pytest.raises(TypeError, match="remote_id"):
        state.apply(answered=[replace(synced, remote_id=1.5)])
    assert state.get("a") == synced


def test_apply_is_atomic_when_any_part_fails(state: State) -> None:
    state.put_many([row("a")])
    bad = Row("b", 1, 1, "bogus")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        state.apply(put=[row("c"), bad], delete=["a"])
    assert list(state.iter_rows()) == [row("a")]


def test_apply_rejects_a_remote_id_of_another_type_and_writes_nothing(state: State) -> None:
    with pytest.raises(TypeError, match="remote_id"):
        state.apply(put=[row("a"), row("b", remote_id=1.5)])
    assert list(state.iter_rows()) == []


def test_iter_rows_sees_one_snapshot_while_the_writer_commits(state: State) -> None:
    state.put_many([row(f"k{i:05d}") for i in range(5000)])
    seen = []
    for i, r in enumerate(state.iter_rows()):
        seen.append(r.key)
        if i == 10:
            state.apply(put=[row("k99999"), row("k00005", Status.FAILED)], delete=["k04000"])
    assert seen == [f"k{i:05d}" for i in range(5000)]


def test_runs_are_recorded_with_their_counts(state: State) -> None:
    first = state.start_run("sync")
    state.finish_run(first, exit_code=0, counts={"added": 3, "skipped": 1})
    second = state.start_run("reconcile")
    runs = state.last_runs()
    assert [(r["id"], r["command"], r["exit_code"], r["counts"]) for r in runs] == [
        (second, "reconcile", None, None),
        (first, "sync", 0, {"added": 3, "skipped": 1}),
    ]
    assert runs[1]["finished_at"] >= runs[1]["started_at"]
    assert len(state.last_runs(1)) == 1


def test_a_listing_keeps_each_id_once_and_is_replaced_whole(state: State) -> None:
    listing = state.listing()
    listing.start()
    listing.add([("1", 1, "t", "a.jpg", None, None), ("1", 1, "t", "a.jpg", None, None)])
    listing.add([("x", "x", None, None, None, None)])
    assert listing.count() == 2
    listing.start()
    assert listing.count() == 0


def test_a_listing_lives_in_a_scratch_file_beside_the_state_until_it_is_closed(state: State) -> None:
    file = listing_path(state.path)
    file.write_bytes(b"left by a killed run, not even SQLite")
    listing = state.listing()
    listing.start()  # a killed run's file is replaced
    listing.add([("2", 2, None, None, None, None), ("3", 3, None, None, None, None)])
    assert listing.count() == 2 and file.exists()
    with State.open(state.path) as other:  # the state file itself holds no listing
        tables = other._db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'listing'")
        assert tables.fetchone() == (0,)
    listing.close()
    assert not file.exists()
    listing.close()  # twice is harmless


def test_a_listing_page_of_more_rows_than_one_insert_binds_is_written_whole(state: State) -> None:
    listing = state.listing()
    listing.start()
    listing.add([(str(i), i, None, None) for i in range(10_000)])
    assert listing.count() == 10_000
    listing.close()


def test_integrity_ok_on_a_healthy_db(state: State) -> None:
    state.put_many([row("a")])
    assert state.integrity_ok() is True


def test_put_many_writes_10k_rows_whole_past_sqlites_variable_limit(state: State) -> None:
    """10,000 rows bind 130,000 values, four times SQLite's default limit of 32,766 a statement.

    How fast that is is a figure of ``python -m bench state``, not a test.
    """
    rows = [row(f"photos/{i:07d}.jpg", sha256="ab" * 32, remote_id=i) for i in range(10_000)]
    state.put_many(rows)
    assert list(state.iter_rows()) == rows


def test_iter_rows_streams_100k_rows_in_key_order_without_holding_them(state: State) -> None:
    """The objects alive at once while streaming (``sys.getallocatedblocks``) stay fewer than the rows:
    one cursor batch at a time, where holding every row would take several objects a row.

    How fast it streams is a figure of ``python -m bench state``, not a test.
    """
    rows = [row(f"photos/{i:07d}.jpg", sha256="ab" * 32, remote_id=i) for i in range(100_000)]
    state.put_many(rows)
    before, held, wrong = sys.getallocatedblocks(), 0, []
    for i, (got, want) in enumerate(zip(state.iter_rows(), rows, strict=True)):
        if got != want:
            wrong.append(i)
        if i % 500 == 0:  # a sample: counting the blocks walks the allocator's arenas
            held = max(held, sys.getallocatedblocks() - before)
    assert wrong == []
    assert held < len(rows), f"{held:,} blocks held while streaming {len(rows):,} rows"


def test_a_registered_migration_upgrades_an_older_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    with State.open(path) as st:
        st.put_many([row("a")])
    calls: list[int] = []

    def later(db: sqlite3.Connection) -> None:
        calls.append(1)
        db.execute("ALTER TABLE items ADD COLUMN extra TEXT")

    monkeypatch.setattr(state_mod, "MIGRATIONS", [*state_mod.MIGRATIONS, later])
    monkeypatch.setattr(state_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    State.open(path).close()
    with State.open(path) as st:
        assert list(st.iter_rows()) == [row("a")]
    db = sqlite3.connect(path)
    assert (db.execute("PRAGMA user_version").fetchone()[0], calls) == (SCHEMA_VERSION + 1, [1])
    db.close()


def test_a_failing_migration_leaves_the_file_at_its_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    State.open(path).close()

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        db.execute("THIS IS NOT SQL")

    monkeypatch.setattr(state_mod, "MIGRATIONS", [*state_mod.MIGRATIONS, broken])
    monkeypatch.setattr(state_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StateError, match=str(path)):
        State.open(path)
    db = sqlite3.connect(path)
    got = (
        db.execute("PRAGMA user_version").fetchone()[0],
        db.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall(),
    )
    db.close()
    assert got == (SCHEMA_VERSION, [])


def test_a_directory_at_the_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="not a regular file"):
        State.open(tmp_path)


def test_an_intent_synced_is_the_row_replace_would_make() -> None:
    intent = Row(
        key="album/a.jpg",
        size=10,
        mtime_ns=20,
        status=Status.UPLOADING,
        etag="e",
        sha256="s" * 64,
        remote_id=7,
        token="t" * 32,
        meta_hash="m",
        attempts=3,
        code=6,
        message="refused before",
        updated_at=1.5,
        transform="max_side=1024",
    )
    expected = replace(intent, status=Status.SYNCED, remote_id=9, code=None, message=None, attempts=0)
    assert intent.synced(9) == expected
