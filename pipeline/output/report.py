"""What a run tells its user: the summary (``--json`` or a table) and the events along the way.

Progress goes to stderr and only on a terminal (a rich progress bar); elsewhere — cron — one short
line per event worth reading (a refusal, a skip, throttling, a failure) and one summary line, so
cron mails stay short. ``--json`` prints one object on stdout and nothing else there.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipeline.keys import safe_key


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
    #: What a dry run would send, by action.
    planned: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "added": self.added,
            "replaced": self.replaced,
            "retouched": self.retouched,
            "metadata_updated": self.metadata_updated,
            "renamed": self.renamed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "rejected": dict(sorted(self.rejected.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "failed": self.failed,
            "pending": self.pending,
            "requests": self.requests,
            "throttled": self.throttled,
            "elapsed": round(self.elapsed, 3),
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "scan_errors": list(self.scan_errors),
            "error": self.error,
        }
        if self.dry_run:
            out["planned"] = dict(sorted(self.planned.items()))
        return out

    def summary_line(self) -> str:
        parts = [
            f"added {self.added}",
            f"replaced {self.replaced}",
            f"removed {self.removed}",
            f"unchanged {self.unchanged}",
        ]
        if self.retouched:
            parts.append(f"retouched {self.retouched}")
        if self.metadata_updated:
            parts.append(f"metadata {self.metadata_updated}")
        if self.renamed:
            parts.append(f"renamed {self.renamed}")
        if self.rejected:
            parts.append(f"rejected {sum(self.rejected.values())}")
        if self.skipped:
            parts.append(f"skipped {sum(self.skipped.values())}")
        if self.failed:
            parts.append(f"failed {self.failed}")
        if self.pending:
            parts.append(f"pending {self.pending}")
        parts.append(f"requests {self.requests}")
        if self.throttled:
            parts.append(f"throttled {self.throttled}")
        head = "dry run: would send" if self.dry_run else "sync"
        if self.dry_run:
            planned = ", ".join(f"{k} {v}" for k, v in sorted(self.planned.items())) or "nothing"
            return f"{head} {planned}; unchanged {self.unchanged} ({self.elapsed:.1f}s)"
        return f"{head}: {', '.join(parts)} in {self.elapsed:.1f}s, exit {self.exit_code}"


class Reporter(Protocol):
    """Where the engine says what is happening."""

    def planned(self, n: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def event(self, kind: str, key: str, detail: str) -> None: ...
    def note(self, text: str) -> None: ...
    def throttle(self, gate_closed: bool, rate: float | None) -> None: ...
    def close(self) -> None: ...


class LogReporter:
    """One plain line per event on stderr: what cron mails and logs want. ``quiet`` keeps only problems."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._throttled = False

    def _line(self, text: str) -> None:
        print(f"facesync: {text}", file=self.stream, flush=True)

    def planned(self, n: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def event(self, kind: str, key: str, detail: str) -> None:
        self._line(f"{kind} {safe_key(key)}: {detail}" if detail else f"{kind} {safe_key(key)}")

    def note(self, text: str) -> None:
        if not self.quiet:
            self._line(text)

    def throttle(self, gate_closed: bool, rate: float | None) -> None:
        if gate_closed and not self._throttled:
            self._line("throttled by the service: pausing all workers")
        elif not gate_closed and self._throttled:
            rate_s = f" at {rate:.1f} req/s" if rate else ""
            self._line(f"throttling over: resuming{rate_s}")
        self._throttled = gate_closed

    def close(self) -> None:
        pass


class TerminalReporter(LogReporter):
    """A rich progress bar (rate, ETA, throttling shown) with events printed above it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.console = Console(file=self.stream, stderr=stream is None)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=False,
        )
        self.task: TaskID = self.progress.add_task("sync", total=None, rate="", status="")
        self._started = time.monotonic()
        self._done = 0
        self.progress.start()

    def _line(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def planned(self, n: int) -> None:
        task = self.progress.tasks[0]
        self.progress.update(self.task, total=(task.total or 0) + n)

    def advance(self, n: int = 1) -> None:
        self._done += n
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self.progress.update(self.task, advance=n, rate=f"{self._done / elapsed:.1f}/s")

    def throttle(self, gate_closed: bool, rate: float | None) -> None:
        status = "[throttled: paused]" if gate_closed else (f"{rate:.1f} req/s" if rate else "")
        self.progress.update(self.task, status=status)
        super().throttle(gate_closed, rate)

    def close(self) -> None:
        self.progress.stop()


def make_reporter(*, json_mode: bool, stream: TextIO | None = None) -> Reporter:
    """A progress bar on a terminal, plain lines elsewhere; with ``--json``, only problems on stderr."""
    out = stream or sys.stderr
    if not json_mode and out.isatty():
        return TerminalReporter(out)
    return LogReporter(out, quiet=json_mode)
