"""The state DB's schema and its opening: file checks, connections, transactions, migrations.

A facesync state DB is an SQLite file marked with ``PRAGMA application_id`` (so a foreign file is
refused, never touched) whose ``PRAGMA user_version`` counts the migrations applied. Each migration
runs in its own ``BEGIN IMMEDIATE`` transaction; ``MIGRATIONS`` is append-only. WAL mode lets a
streaming reader see one consistent snapshot while the writer commits.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from pipeline.errors import StateError, cannot_write, sqlite_advice

#: PRAGMA application_id of every facesync state DB ("FcSy"): tells ours from a foreign SQLite file.
APPLICATION_ID = 0x46635379
BUSY_TIMEOUT_MS = 10_000
_HEADER = b"SQLite format 3\x00"

# None binds as NULL either way; registered, the sqlite3 module finds it in its adapters at once instead
# of trying two protocol attributes first (CPython adapts every value that is not exactly an int, float
# or str): binding a None costs 0.27 µs, not 0.49, and a listed image without metadata binds two (a
# reconcile's listing inserts 2.2 x faster; docs/performance.md). Process-wide, and the identity:
# ``{}.get(None)`` is None, in a C call (no Python frame per value).
sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run statements one by one: ``executescript`` would COMMIT the migration's transaction first."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _m1_initial(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE items (
            key BLOB PRIMARY KEY NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('pending','uploading','synced','rejected','skipped','failed','deleting')),
            etag TEXT,
            sha256 TEXT,
            remote_id,
            token TEXT,
            meta_hash TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            code INTEGER,
            message TEXT,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX items_status ON items (status);
        CREATE TABLE tombstones (
            remote_id PRIMARY KEY NOT NULL,
            key BLOB,
            reason TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            exit_code INTEGER,
            counts TEXT
        );
        CREATE TABLE snapshot (
            seq INTEGER PRIMARY KEY,
            remote_id NOT NULL,
            url TEXT,
            metadata TEXT
        );
        """,
    )


def _m2_orphans_seen(db: sqlite3.Connection) -> None:
    """Reconcile's two-pass mode: when each orphan was first seen (protects another writer's adds)."""
    _script(db, "CREATE TABLE orphans_seen (remote_id PRIMARY KEY NOT NULL, first_seen REAL NOT NULL)")


#: The content-hash index: a file whose content the state already holds is found by it (a rename, a
#: copy). A sync into a state that holds no synced row builds it at its end instead of row by row
#: (:meth:`pipeline.state.store.State.build_content_index`): its keys are random, so each row costs a page.
CONTENT_INDEX = "CREATE INDEX IF NOT EXISTS items_sha256 ON items (sha256) WHERE sha256 IS NOT NULL"


def _m3_lookup_indexes(db: sqlite3.Connection) -> None:
    """Renames are found by content hash, search results mapped back to files by remote id."""
    db.execute(CONTENT_INDEX)
    db.execute("CREATE INDEX items_remote_id ON items (remote_id) WHERE remote_id IS NOT NULL")


def _m4_learned(db: sqlite3.Connection) -> None:
    """What the service taught this state (the most ids one DELETE takes): kept for the next run."""
    _script(db, "CREATE TABLE learned (name TEXT PRIMARY KEY NOT NULL, value, updated_at REAL NOT NULL)")


def _m5_listing(db: sqlite3.Connection) -> None:
    """Reconcile diffs in SQL: the listing as a table keyed by the id's text (an int and its digits
    compare equal, as the API page leaves the id's type open), and the lookups the diff makes."""
    _script(
        db,
        """
        DROP TABLE snapshot;
        CREATE TABLE listing (
            remote_text TEXT PRIMARY KEY NOT NULL,
            remote_id NOT NULL,
            token TEXT,
            key TEXT,
            sha256 TEXT,
            url TEXT,
            metadata TEXT
        ) WITHOUT ROWID;
        CREATE INDEX listing_key ON listing (key) WHERE key IS NOT NULL;
        CREATE INDEX items_token ON items (token) WHERE token IS NOT NULL;
        CREATE INDEX items_remote_text ON items (CAST(remote_id AS TEXT)) WHERE remote_id IS NOT NULL
        """,
    )


def _m6_transform(db: sqlite3.Connection) -> None:
    """Each row records the transform settings its image was sent with (NULL: the file as it is), so a
    change of the settings re-sends it; a refused row, what it was refused under (docs/transform.md)."""
    _script(db, "ALTER TABLE items ADD COLUMN transform TEXT")


def _m7_listing_out(db: sqlite3.Connection) -> None:
    """The listing leaves the state for a scratch file of each reconcile's own (``<state>.listing``,
    :mod:`pipeline.state.listing`): written page by page without a journal, gone when the run ends."""
    _script(db, "DROP TABLE listing")


def _m8_unsettled(db: sqlite3.Connection) -> None:
    """Uploads whose outcome is not known yet (``docs/state.md``, "Unsettled uploads"): every add's token
    from its intent until a clean answer, or until a listing settles it. An ``uploading`` row left by an
    older facesync is one already."""
    _script(
        db,
        """
        CREATE TABLE unsettled (token TEXT PRIMARY KEY NOT NULL, key BLOB NOT NULL, since REAL NOT NULL);
        INSERT OR IGNORE INTO unsettled (token, key, since)
            SELECT token, key, updated_at FROM items WHERE status = 'uploading' AND token IS NOT NULL
        """,
    )


def _m9_spent(db: sqlite3.Connection) -> None:
    """The request budget's count (``docs/state.md``, "Request budget"): each run's requests, counted
    ahead of sending, stamped with when it last sent; ``limits.requests_per_day`` sums the last 24 h."""
    _script(
        db,
        "CREATE TABLE spent (run INTEGER PRIMARY KEY NOT NULL, at REAL NOT NULL, requests INTEGER NOT NULL)",
    )


def _m10_id_text_indexes(db: sqlite3.Connection) -> None:
    """The diff looks listed images up in the tombstones and in ``orphans_seen`` by the id's text, as
    in ``items`` (``items_remote_text``): without these, each lookup read the whole table, so a listing
    cost its size times theirs (``tests/test_diff_scales.py``)."""
    _script(
        db,
        "CREATE INDEX tombstones_remote_text ON tombstones (CAST(remote_id AS TEXT));"
        "CREATE INDEX orphans_seen_remote_text ON orphans_seen (CAST(remote_id AS TEXT))",
    )


def _m11_one_id_index(db: sqlite3.Connection) -> None:
    """One index on the remote id, not two: ``items_remote_text`` (on its text) finds a row by its id
    as well as ``items_remote_id`` did, with the id itself compared after it (an int and its digits
    are two ids), and each add's answer wrote both (~4 µs a file, docs/performance.md)."""
    db.execute("DROP INDEX IF EXISTS items_remote_id")


#: Applied in order; ``PRAGMA user_version`` is how many have run. Append, never edit or reorder.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m1_initial,
    _m2_orphans_seen,
    _m3_lookup_indexes,
    _m4_learned,
    _m5_listing,
    _m6_transform,
    _m7_listing_out,
    _m8_unsettled,
    _m9_spent,
    _m10_id_text_indexes,
    _m11_one_id_index,
]
SCHEMA_VERSION = len(MIGRATIONS)


def must_exist(path: Path) -> None:
    """Refuse (StateError, exit 2) a state file that is not there: a command that only reads, or only
    updates, must not create one (a mistyped ``state.path`` is not an empty archive)."""
    if not path.exists():
        raise StateError(f"state {path}: no such file (check state.path; `facesync sync` creates the state)")


def open_db(path: Path, *, create: bool) -> sqlite3.Connection:
    """A connection to the state DB at ``path``, migrated to :data:`SCHEMA_VERSION`.

    Refuses (StateError, exit 2) a missing file unless ``create``, anything that is not a regular
    file, not SQLite, a foreign SQLite DB, or one from a newer facesync.
    """
    if not path.exists():
        if not create:
            must_exist(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise cannot_write(f"state {path}: cannot create", exc) from None
    elif not path.is_file():
        raise StateError(f"state {path}: not a regular file")
    try:
        with path.open("rb") as f:
            header = f.read(len(_HEADER))
    except OSError as exc:
        raise StateError(f"state {path}: cannot read: {exc}") from None
    if header and header != _HEADER:
        raise StateError(f"state {path}: not an SQLite database (refusing to touch it)")
    try:
        db = connect(path)
    except sqlite3.Error as exc:
        raise StateError(f"state {path}: cannot open: {exc}") from None
    try:
        _check_and_migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def transaction(db: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, ROLLBACK on any error; SQLite errors become a StateError naming the file."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise StateError(f"state {path}: write failed: {exc}{sqlite_advice(exc, path)}") from exc


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return db


def _check_and_migrate(db: sqlite3.Connection, path: Path) -> None:
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if advice := sqlite_advice(exc, path):
            raise StateError(f"state {path}: cannot open it: {exc}{advice}") from None
        raise StateError(
            f"state {path}: not a usable SQLite database ({exc}); refusing to touch it"
        ) from None
    fresh = app_id == 0 and version == 0 and tables == 0
    if not fresh and app_id != APPLICATION_ID:
        raise StateError(
            f"state {path}: a foreign SQLite database (application_id {app_id:#x}, not facesync's "
            f"{APPLICATION_ID:#x}); refusing to touch it"
        )
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state {path}: schema version {version} is newer than this facesync knows ({SCHEMA_VERSION}); "
            "upgrade facesync"
        )
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        for number in range(version, SCHEMA_VERSION):
            with transaction(db, path):
                MIGRATIONS[number](db)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {number + 1}")
    except sqlite3.DatabaseError as exc:
        advice = sqlite_advice(exc, path)
        raise StateError(f"state {path}: cannot prepare the database: {exc}{advice}") from None
