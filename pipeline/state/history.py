"""What runs leave for later runs: the runs table, the requests they spent, what the service taught.

Mixed into :class:`~pipeline.state.store.State`, on its connection. None of it is a row of ``items``:
a run records itself here (its start, the requests it spends as it goes, its counts at the end) and
reads back what earlier runs left (the rolling day's budget, the pace, ``learned``), so it is kept
apart from the rows the plan and the state writer work on.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any


class History:
    """The ``runs``, ``spent`` and ``learned`` tables of a :class:`~pipeline.state.store.State`."""

    _db: sqlite3.Connection
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    # -- what the service taught this state ---------------------------------------------------------------
    def learned(self, name: str) -> Any:
        """A value learned from the service by an earlier run (e.g. ``delete_batch``), or None."""
        found = self._db.execute("SELECT value FROM learned WHERE name = ?", (name,)).fetchone()
        return found[0] if found else None

    def learn(self, name: str, value: int | float | str) -> None:
        """Remember ``value`` for later runs."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO learned (name, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (name, value, time.time()),
            )

    # -- runs ----------------------------------------------------------------------------------------------
    def start_run(self, command: str) -> int:
        with self._transaction() as db:
            cur = db.execute("INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, time.time()))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_run(self, run_id: int, *, exit_code: int, counts: Mapping[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, exit_code = ?, counts = ? WHERE id = ?",
                (time.time(), exit_code, json.dumps(dict(counts), sort_keys=True, default=str), run_id),
            )

    def last_runs(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` latest runs, newest first; ``counts`` decoded (None while a run is unfinished)."""
        found = self._db.execute(
            "SELECT id, command, started_at, finished_at, exit_code, counts FROM runs"
            " ORDER BY id DESC LIMIT ?",
            (n,),
        )
        names = ("id", "command", "started_at", "finished_at", "exit_code", "counts")
        runs = [dict(zip(names, r, strict=True)) for r in found]
        for run in runs:
            run["counts"] = json.loads(run["counts"]) if run["counts"] is not None else None
        return runs

    # -- the request budget ---------------------------------------------------------------------------------
    def spend(self, run_id: int, requests: int, now: float) -> None:
        """Run ``run_id`` has sent (or is about to send) ``requests`` in all, as of ``now`` (a time); rows
        two days older are dropped (only the last 24 h count)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO spent (run, at, requests) VALUES (?, ?, ?) "
                "ON CONFLICT (run) DO UPDATE SET at = excluded.at, requests = excluded.requests",
                (run_id, now, requests),
            )
            db.execute("DELETE FROM spent WHERE at < ?", (now - 2 * 86400,))

    def requests_since(self, since: float) -> int:
        """Requests the runs that sent any after ``since`` (a time) counted: what the rolling day has
        spent (a run counts whole until 24 h after its last request)."""
        found = self._db.execute("SELECT sum(requests) FROM spent WHERE at >= ?", (since,)).fetchone()
        return int(found[0] or 0)
