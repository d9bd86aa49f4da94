"""The summary of a run: counts kept while it runs, printed at the end (``--json`` or one line / a table).

``to_json`` of each report is the ``--json`` contract (README, "Commands"): add fields freely, never
rename or remove one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from pipeline.keys import ImageId

if TYPE_CHECKING:
    from pipeline.output.actions import ActionList


#: A sync's actions on one file, as ``planned`` and a dry run's ``actions`` name them, and the count of each.
ACTION_COUNTS = {
    "add": "added",
    "replace": "replaced",
    "retouch": "retouched",
    "metadata": "metadata_updated",
    "rename": "renamed",
    "remove": "removed",
}
#: The metadata of a report's field that is not part of ``--json``.
_INTERNAL = {"json": False}
#: Who hears of each action as it is done (or, in a dry run, planned): (action, key, the key it had).
ActionListener = Callable[[str, str, "str | None"], None]


@dataclass
class SyncReport:
    """Counts of one ``sync``; ``to_json`` is the ``--json`` contract."""

    added: int = 0
    replaced: int = 0
    retouched: int = 0
    metadata_updated: int = 0
    renamed: int = 0
    removed: int = 0
    unchanged: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    pending: int = 0
    requests: int = 0
    throttled: int = 0
    elapsed: float = 0.0
    exit_code: int = 0
    dry_run: bool = False
    scan_errors: list[str] = field(default_factory=list)
    error: str | None = None
    #: Adds whose answer was lost on an attempt before the last: the collection may hold a second copy
    #: (or, if the last attempt failed too, the first) until ``facesync reconcile`` settles it.
    uncertain: int = 0
    #: Files the run had still to send when it stopped (the service failing, the quota spent).
    not_tried: int = 0
    #: Of the images added or replaced, those sent re-encoded by ``transform:`` (not the file itself).
    transformed: int = 0
    #: What a dry run would send, by action.
    planned: Counter[str] = field(default_factory=Counter)
    #: Adds of this run and earlier ones whose outcome no answer or listing has settled when the run
    #: ends: until they are, the collection may hold a second copy (or lack one), and the run exits 1.
    unsettled: int = 0
    #: Unsettled adds of earlier runs that this run's listing read settled (``engine/settle.py``) ...
    settled: int = 0
    #: ... the second copies it deleted doing so ...
    duplicates_removed: int = 0
    #: ... and the rows it restored from images an older state (a backup) did not know it had sent.
    restored: int = 0
    #: ``--checksum``: synced files read and hashed and found as sent (nothing written, nothing sent).
    verified: int = 0
    #: The run's deadline (``--max-duration``, ``--until``, ``limits.max_duration``) stopped it (exit 7).
    deadline_hit: bool = False
    #: Files still to send when the run ended (``not_tried``: the next run's work) ...
    left: int = 0
    #: ... exactly, or only at least that many (the count was cut short: Ctrl-C, or the deadline's
    #: counting grace ran out on a large source).
    left_exact: bool = True
    #: Requests the budget (``limits.max_requests``, ``limits.requests_per_day``) has left; None: no cap.
    budget_left: int | None = None
    #: A dry run's plan (``engine/eta.py``): ``requests``, ``rate``, ``rate_source``, ``seconds``,
    #: ``per_run``, ``runs``, ``text``; None in a real run.
    plan: dict[str, Any] | None = None
    #: The state's rows still to send when the run ended, by status (``pending`` counts them all):
    #: ``uploading`` (an add in flight: its answer not received), ``pending``, ``failed``.
    waiting: dict[str, int] = field(default_factory=dict)
    #: Not in ``--json`` as they are (``_INTERNAL``): who is told of each action, for ``-v`` and a dry
    #: run's list (``output/actions.py``) ...
    on_action: ActionListener | None = field(default=None, repr=False, compare=False, metadata=_INTERNAL)
    #: ... which a dry run keeps here: ``--json`` streams it as ``actions``.
    actions: ActionList | None = field(default=None, repr=False, compare=False, metadata=_INTERNAL)

    def did(self, action: str, key: str, *, old: str | None = None) -> None:
        """One file's ``action`` (a key of :data:`ACTION_COUNTS`) done, or planned: counted, and told."""
        name = ACTION_COUNTS[action]
        setattr(self, name, getattr(self, name) + 1)
        self.tell(action, key, old=old)

    def tell(self, action: str, key: str, *, old: str | None = None) -> None:
        """Tell :attr:`on_action` of one file's ``action`` (counted elsewhere, as a batch's removals)."""
        if self.on_action is not None:
            self.on_action(action, key, old)

    def to_json(self) -> dict[str, Any]:
        """The ``sync --json`` object (``planned`` only in a dry run)."""
        return _json_of(self, dry_run_only="planned")

    def would_send(self) -> dict[str, int]:
        """A dry run's ``planned``: what the run would do, by action (the real run's counts)."""
        done = {
            "add": self.added,
            "replace": self.replaced,
            "retouch": self.retouched,
            "metadata": self.metadata_updated,
            "rename": self.renamed,
            "remove": self.removed,
        }
        return {action: n for action, n in done.items() if n}

    def files(self) -> list[tuple[str, int]]:
        """This run's outcome for each file it saw, as (label, count): each file is in exactly one, so
        they add up to the files seen (a removed file is not seen: it is gone)."""
        return [
            ("added", self.added),
            ("replaced", self.replaced),
            ("unchanged", self.unchanged),
            ("retouched", self.retouched),
            ("metadata", self.metadata_updated),
            ("renamed", self.renamed),
            ("verified", self.verified),
            ("restored", self.restored),
            ("rejected", sum(self.rejected.values())),
            ("skipped", sum(self.skipped.values())),
            ("failed", self.failed),
            ("not tried", self.not_tried),
        ]

    def summary_line(self) -> str:
        """The one line a run without ``--json`` ends with: the files seen, each counted once (the first
        three always), then what is not a file of this run (removals, settled uploads, requests), then
        what the state still has to send, by the status ``facesync status`` and ``ls`` name."""
        counts = self.files()
        seen = sum(n for _, n in counts)
        files = ", ".join(f"{label} {n}" for i, (label, n) in enumerate(counts) if n or i < 3)
        cut = "" if self.left_exact else " looked at before it stopped"  # the rest were not counted
        parts = [f"{files} = {seen} file(s){cut}", f"removed {self.removed}", f"requests {self.requests}"]
        if self.throttled:
            parts.append(f"throttled {self.throttled}")
        if self.uncertain:
            parts.append(f"uncertain {self.uncertain}")
        for name in ("settled", "duplicates_removed", "unsettled"):
            if n := getattr(self, name):
                parts.append(f"{name.replace('_', ' ')} {n}")
        if self.transformed:
            parts.append(f"transformed {self.transformed}")
        if self.waiting:
            parts.append("to send again: " + ", ".join(f"{k} {v}" for k, v in self.waiting.items()))
        if self.deadline_hit:
            parts.append("stopped by the deadline")
        if self.budget_left is not None:
            parts.append(f"budget left {self.budget_left}")
        if self.dry_run:
            would = ", ".join(f"{k} {v}" for k, v in self.would_send().items())
            skipped = f"; skip {sum(self.skipped.values())} locally" if self.skipped else ""
            told = f"; plan: {self.plan['text']}" if self.plan else ""
            return (
                f"dry run: {'would ' + would if would else 'nothing to do'}{skipped}; "
                f"unchanged {self.unchanged} ({self.elapsed:.1f}s); "
                f"what the service would refuse is known only by sending{told}"
            )
        return f"sync: {'; '.join(parts)} in {self.elapsed:.1f}s, exit {self.exit_code}"


def interrupted_message(report: SyncReport, command: str) -> str:
    """What a run stopped by Ctrl-C (exit 130) says: that it was, what it recorded, and what to run."""
    sent = report.added + report.replaced + report.renamed + report.metadata_updated + report.removed
    verb = "would have been recorded" if report.dry_run else "is recorded"
    in_flight = report.waiting.get("uploading", 0)
    flight = (
        f"; {in_flight} upload(s) cut in flight stay `uploading` until the next run settles them"
        if in_flight and not report.dry_run
        else ""
    )
    return (
        f"interrupted (Ctrl-C): what was done before ({sent} change(s) sent) {verb}{flight}; the rest "
        f"was not sent: run `facesync {command}` again to finish"
    )


@dataclass
class ReconcileReport:
    """Counts of one ``reconcile``; ``to_json`` is the ``--json`` contract."""

    listed: int = 0
    orphans: int = 0
    adopted: int = 0
    deleted: int = 0
    missing_requeued: int = 0
    duplicates_removed: int = 0
    uploading_requeued: int = 0
    deferred: int = 0
    failed: int = 0
    requests: int = 0
    elapsed: float = 0.0
    exit_code: int = 0
    dry_run: bool = False
    error: str | None = None
    #: ``--adopt``: state rows rebuilt from listed images that hold their file's content ...
    restored: int = 0
    #: ... and those whose image holds other content (the next sync replaces them).
    restored_changed: int = 0
    #: Unsettled uploads (lost answers, of any sync) this reconcile's listing settled.
    settled: int = 0
    #: A dry run: the first 100 ids it would delete (``engine.deletes.WOULD_DELETE_CAP``), not all ...
    would_delete: list[ImageId] = field(default_factory=list)
    #: The run's deadline stopped it (exit 7); a listing cut by it changed nothing.
    deadline_hit: bool = False
    #: Requests the budget has left (None: no cap).
    budget_left: int | None = None
    #: ... how many it would delete in all ...
    would_delete_count: int = 0
    #: ... and the NDJSON file that lists every one (``--would-delete-file``), if one was asked for.
    would_delete_file: str | None = None
    #: ... and the first 100 as objects, as that file has them: ``{"id", "key", "reason", "url",
    #: "metadata"}`` (``engine.deletes.WouldDelete``), beside the ids of ``would_delete``.
    would_delete_items: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``reconcile --json`` object (the ``would_delete*`` fields only in a dry run)."""
        out = _json_of(self, dry_run_only="would_delete")
        if not self.dry_run:
            del out["would_delete_count"], out["would_delete_file"], out["would_delete_items"]
        return out

    def table(self) -> list[tuple[str, int]]:
        """The reconcile summary as (label, count) rows."""
        return [
            ("listed", self.listed),
            ("restored (--adopt)", self.restored),
            ("orphans", self.orphans),
            ("adopted", self.adopted),
            ("deleted" if not self.dry_run else "would delete", self.deleted or self.would_delete_count),
            ("duplicates removed", self.duplicates_removed),
            ("missing re-queued", self.missing_requeued),
            ("uploading re-queued", self.uploading_requeued),
            ("deferred (too young)", self.deferred),
            ("unsettled now settled", self.settled),
            ("failed", self.failed),
            ("requests", self.requests),
        ]


def _json_of(report: SyncReport | ReconcileReport, dry_run_only: str) -> dict[str, Any]:
    """A report's fields, in their order, as JSON values; ``dry_run_only`` only in a dry run.

    The field order is the ``--json`` key order: a new field goes where it should appear.
    """
    out: dict[str, Any] = {}
    for f in fields(report):
        if f.metadata.get("json") is False or (f.name == dry_run_only and not report.dry_run):
            continue
        value = getattr(report, f.name)
        if isinstance(value, Counter):
            value = dict(sorted(value.items()))
        elif isinstance(value, list):
            value = list(value)
        elif f.name == "elapsed":
            value = round(value, 3)
        out[f.name] = value
    return out
