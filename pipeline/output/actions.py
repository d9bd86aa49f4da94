"""Each file's action, named: ``-v`` lines (``added a.jpg``, ``would rename a.jpg → b.jpg``) and a dry
run's list of every planned action for ``sync --dry-run --json`` (``actions``).

The list is kept in a spooled temporary file, not in memory: a dry run of a first sync of a million
files plans a million adds, and its memory must stay that of a hundred. The file is anonymous (made
and unlinked at once, in the temp folder): a dry run creates nothing a user would find.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pipeline.keys import safe_key

if TYPE_CHECKING:
    from pipeline.output.reporter import Reporter
    from pipeline.output.summary import ActionListener, SyncReport

#: What a line says of each action, done and planned.
_DONE = {
    "add": "added",
    "replace": "replaced",
    "retouch": "retouched",
    "metadata": "metadata updated",
    "rename": "renamed",
    "remove": "removed",
}
_PLANNED = {
    "add": "would add",
    "replace": "would replace",
    "retouch": "would retouch",
    "metadata": "would update metadata of",
    "rename": "would rename",
    "remove": "would remove",
}
#: Kept in memory up to this many bytes, then in the temporary file.
_SPOOL = 1 << 20


def action_line(action: str, key: str, old: str | None, *, planned: bool) -> str:
    """One file's action for humans: ``added a.jpg``, ``would rename old.jpg → new.jpg``."""
    verb = (_PLANNED if planned else _DONE)[action]
    if old is not None and old != key:
        return f"{verb} {safe_key(old)} → {safe_key(key)}"
    return f"{verb} {safe_key(key)}"


def action_object(action: str, key: str, old: str | None) -> dict[str, Any]:
    """One planned action in ``--json``: ``{"action", "key"}``, and ``"from"`` for a rename."""
    out: dict[str, Any] = {"action": action, "key": key}
    if old is not None:
        out["from"] = old
    return out


class ActionList:
    """Every action of a dry run, in order, as JSON texts in a spooled temporary file (flat memory)."""

    def __init__(self) -> None:
        import tempfile  # a dry run's: a nightly no-op does not load it (nor shutil, random, bz2, lzma)

        from pipeline.output.text import json_line  # as --json writes every string (exact, escaped)

        self._json_line = json_line

        # Closed by texts() once read, or with the process: a dry run's list lives as long as its run.
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=_SPOOL, mode="w+", encoding="utf-8", newline="\n"
        )
        self.count = 0

    def add(self, action: str, key: str, old: str | None) -> None:
        self._file.write(self._json_line(action_object(action, key, old)) + "\n")
        self.count += 1

    def texts(self) -> Iterator[str]:
        """Each action's JSON text, in the order they were added (read once, then closed)."""
        self._file.seek(0)
        try:
            for line in self._file:
                yield line.rstrip("\n")
        finally:
            self._file.close()


def hear_actions(report: SyncReport, reporter: Reporter, *, listing: bool = False) -> None:
    """Tell ``reporter`` of each of the run's file actions (its ``-v`` lines); with ``listing`` (a dry
    run's ``--json``), also list them all in ``report.actions``."""
    planned = report.dry_run
    plan = report.actions = ActionList() if listing else None

    def heard(action: str, key: str, old: str | None) -> None:
        reporter.action(action, key, old, planned=planned)
        if plan is not None:
            plan.add(action, key, old)

    listener: ActionListener = heard
    report.on_action = listener
