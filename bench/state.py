"""The state store: ``State.put_many`` of 10,000 rows and ``State.iter_rows`` over 100,000, vs raw sqlite3.

These were timed assertions in tests/test_state.py (10k rows written in < 0.5 s, 100k streamed in < 1 s);
the tests now pin what the calls do, and the speed is measured here. The baseline is the same work done
by plain ``sqlite3`` on a database of the same schema (created by ``State.open``, so it follows the
store's migrations): the same rows as ready-made tuples, one ``executemany`` in one ``BEGIN IMMEDIATE``
transaction; and ``SELECT`` of every column in key order through ``fetchmany``, without building rows.
The ratio is therefore what facesync adds on top of SQLite (turning rows into parameters and back).
Timed in this process, pinned to the client CPUs; median of alternating rounds, warm cache.
"""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import CLIENT_CPUS, OUT, Figure, log, median, rounds, wait_quiet
from pipeline.state import Row, State, Status

PUT_ROWS = int(os.environ.get("BENCH_STATE_PUT_ROWS", "10000"))
STREAM_ROWS = int(os.environ.get("BENCH_STATE_STREAM_ROWS", "100000"))
ROUNDS = rounds("state", 3)
FETCH = 2000
#: SQLite does nearly all of a write (indexes, pages); building the rows is most of a read (docs/state.md).
PUT_TARGET = 1.5
STREAM_TARGET = 3.0


def rows(n: int) -> list[Row]:
    """``n`` synced rows in key order, every field filled as a synced row's is."""
    return [
        Row(
            key=f"photos/{i // 1000:04d}/IMG_{i:07d}.jpg",
            size=100_000 + i,
            mtime_ns=1_700_000_000_000_000_000 + i,
            status=Status.SYNCED,
            sha256=f"{i:064x}",
            remote_id=i + 1,
            token=f"{i:032x}",
            meta_hash=f"{i:016x}",
            updated_at=1_700_000_000.0 + i,
        )
        for i in range(n)
    ]


def _raw_value(row: Row, column: str) -> Any:
    if column == "key":
        return row.key.encode("utf-8", "surrogateescape")  # stored as the BLOB of its UTF-8 bytes
    if column == "status":
        return row.status.value
    if not hasattr(row, column):
        raise RuntimeError(f"state bench: items.{column} is new to this bench; teach _raw_value about it")
    return getattr(row, column)


def columns(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [r[1] for r in db.execute("PRAGMA table_info(items)")]
    finally:
        db.close()


def fresh_db(path: Path) -> Path:
    """An empty state DB at ``path`` (schema, WAL and pragmas as ``State.open`` makes them)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    State.open(path).close()
    return path


def raw_connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = NORMAL")  # what State.open sets on its connection
    return db


@contextmanager
def pinned() -> Iterator[None]:
    """Run the timed part on the client CPUs (as every measured client is), then restore."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, CLIENT_CPUS)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    with pinned():
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started


def put_facesync(path: Path, batch: list[Row]) -> float:
    with State.open(fresh_db(path)) as state:
        return timed(lambda: state.put_many(batch))


def put_raw(path: Path, batch: list[Row]) -> float:
    names = columns(fresh_db(path))
    params = [tuple(_raw_value(r, c) for c in names) for r in batch]
    sql = f"INSERT INTO items ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    db = raw_connect(path)
    try:

        def write() -> None:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(sql, params)
            db.execute("COMMIT")

        return timed(write)
    finally:
        db.close()


def stream_facesync(state: State, n: int) -> float:
    def stream() -> None:
        count = sum(1 for _ in state.iter_rows())
        if count != n:
            raise RuntimeError(f"state bench: iter_rows gave {count} of {n} rows")

    return timed(stream)


def stream_raw(path: Path, n: int) -> float:
    names = columns(path)
    db = raw_connect(path)
    try:

        def stream() -> None:
            cur = db.execute(f"SELECT {', '.join(names)} FROM items ORDER BY key")
            count = 0
            while batch := cur.fetchmany(FETCH):
                count += len(batch)
            if count != n:
                raise RuntimeError(f"state bench: raw SELECT gave {count} of {n} rows")

        return timed(stream)
    finally:
        db.close()


def figure(name: str, ours: list[float], raw: list[float], target: float, n: int) -> Figure:
    value, base = median(ours), median(raw)
    return Figure(
        name,
        value,
        "s",
        f"<= {target:g} x raw sqlite3 ({base:.3f} s)",
        value / base,
        value / base <= target,
        f"{n:,} rows, median of {ROUNDS}; {n / value:,.0f} rows/s",
    )


def run() -> list[Figure]:
    base = OUT / "state"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    batch = rows(PUT_ROWS)
    put_ours, put_base = [], []
    for n in range(ROUNDS):
        wait_quiet()
        put_base.append(put_raw(base / "put-raw.db", batch))
        put_ours.append(put_facesync(base / "put.db", batch))
        log(
            f"state round {n + 1}: put_many {put_ours[-1]:.3f} s, raw {put_base[-1]:.3f} s "
            f"({PUT_ROWS:,} rows)"
        )

    log(f"state: writing {STREAM_ROWS:,} rows to stream ...")
    big = fresh_db(base / "stream.db")
    stream_ours, stream_base = [], []
    with State.open(big) as state:
        state.put_many(rows(STREAM_ROWS))
        stream_facesync(state, STREAM_ROWS)  # warm the page cache for both
        for n in range(ROUNDS):
            wait_quiet()
            stream_base.append(stream_raw(big, STREAM_ROWS))
            stream_ours.append(stream_facesync(state, STREAM_ROWS))
            log(
                f"state round {n + 1}: iter_rows {stream_ours[-1]:.3f} s, raw {stream_base[-1]:.3f} s "
                f"({STREAM_ROWS:,} rows)"
            )
    put = f"state put_many, {PUT_ROWS // 1000}k rows"
    stream = f"state iter_rows, {STREAM_ROWS // 1000}k rows"
    return [
        figure(put, put_ours, put_base, PUT_TARGET, PUT_ROWS),
        figure(stream, stream_ours, stream_base, STREAM_TARGET, STREAM_ROWS),
    ]


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
