"""What a run tells its user along the way: progress on a terminal, one line per event elsewhere.

Progress goes to stderr and only on a terminal (a rich progress bar); elsewhere — cron — one short
line per event worth reading (a refusal, a skip, throttling, a failure) and one summary line, so
cron mails stay short. ``--json`` prints one object on stdout and nothing else there. Every line is
shown through :func:`pipeline.output.terminal.shown`: a name cannot write to the terminal or forge a line.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Protocol, TextIO

from pipeline.keys import safe_key
from pipeline.output.actions import action_line
from pipeline.output.terminal import OUTPUT, logged, shown

#: How often the throttling shown is brought up to date, in seconds.
THROTTLE_POLL = 0.25


@dataclass(frozen=True)
class Activity:
    """What the progress shows of the client: the gate closed (and for how long yet), the rate paced
    to, and how many calls are retrying after a failed attempt."""

    gate_closed: bool = False
    rate: float | None = None
    wait: float = 0.0
    retrying: int = 0

    def status(self) -> str:
        """The progress bar's status column: ``throttled, waiting 3s``, ``retrying (2)``, or the
        rate limit being paced to (not the throughput: the bar shows that as files/s)."""
        if self.gate_closed:
            return f"throttled, waiting {self.wait:.0f}s" if self.wait >= 0.5 else "throttled, probing"
        limit = f"limit {self.rate:.1f} req/s" if self.rate else ""
        if self.retrying:
            return f"retrying ({self.retrying})" + (f" · {limit}" if limit else "")
        return limit


class Reporter(Protocol):
    """Where the engine says what is happening."""

    def planned(self, n: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def event(self, kind: str, key: str, detail: str) -> None: ...
    def action(self, action: str, key: str, old: str | None, *, planned: bool) -> None: ...
    def note(self, text: str) -> None: ...
    def throttle(self, now: Activity) -> None: ...
    def close(self) -> None: ...


class LogReporter:
    """One plain line per event on stderr: what cron mails and logs want. ``quiet`` keeps only problems."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._throttled = False

    def _line(self, text: str) -> None:
        line = shown(f"facesync: {text}")
        print(line, file=self.stream, flush=True)
        logged(line)

    def planned(self, n: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def event(self, kind: str, key: str, detail: str) -> None:
        self._line(f"{kind} {safe_key(key)}: {detail}" if detail else f"{kind} {safe_key(key)}")

    def action(self, action: str, key: str, old: str | None, *, planned: bool) -> None:
        """One file's action done (or planned): a line at ``-v`` (``added a.jpg``). A dry run names
        each removal at every verbosity already (``would remove KEY: remote id N``)."""
        if OUTPUT.verbose and not (planned and action == "remove"):
            self._line(action_line(action, key, old, planned=planned))

    def note(self, text: str) -> None:
        if not self.quiet:
            self._line(text)

    def throttle(self, now: Activity) -> None:
        if now.gate_closed and not self._throttled:
            wait = f" for ~{now.wait:.0f}s" if now.wait >= 0.5 else ""
            self._line(f"throttled by the service: pausing all workers{wait}")
        elif not now.gate_closed and self._throttled:
            rate_s = f" at {now.rate:.1f} req/s" if now.rate else ""
            self._line(f"throttling over: resuming{rate_s}")
        self._throttled = now.gate_closed

    def close(self) -> None:
        pass


class TerminalReporter(LogReporter):
    """A rich progress bar (rate, ETA, throttling shown) with events printed above it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        # rich is imported only when a terminal will show it: cron runs and --json never pay for it.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

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
        self.task = self.progress.add_task("sync", total=None, rate="", status="")
        self._started = time.monotonic()
        self._done = 0
        self.progress.start()

    def _line(self, text: str) -> None:
        line = shown(text)
        self.progress.console.print(line, markup=False, highlight=False)
        logged(line)

    def planned(self, n: int) -> None:
        task = self.progress.tasks[0]
        self.progress.update(self.task, total=(task.total or 0) + n)

    def advance(self, n: int = 1) -> None:
        self._done += n
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self.progress.update(self.task, advance=n, rate=f"{self._done / elapsed:.1f} files/s")

    def throttle(self, now: Activity) -> None:
        self.progress.update(self.task, status=now.status())
        super().throttle(now)

    def close(self) -> None:
        self.progress.stop()


def make_reporter(*, json_mode: bool, stream: TextIO | None = None) -> Reporter:
    """A progress bar on a terminal, plain lines elsewhere; with ``--json``, only problems on stderr."""
    out = stream or sys.stderr
    if not json_mode and not OUTPUT.quiet and out.isatty():
        return TerminalReporter(out)
    return LogReporter(out, quiet=json_mode or OUTPUT.quiet)


class Throttling(Protocol):
    """What the reporter shows of the limiter: whether the gate is closed (and for how long), the rate
    paced to."""

    @property
    def gate_closed(self) -> bool: ...
    @property
    def current_rate(self) -> float | None: ...
    @property
    def gate_wait(self) -> float: ...


class Paced(Protocol):
    """The client, as the reporter sees it: its limiter, and its calls retrying now."""

    @property
    def limiter(self) -> Throttling | None: ...
    @property
    def retrying(self) -> int: ...


async def watch_throttling(client: Paced, reporter: Reporter) -> None:
    """Tell ``reporter`` whenever the limiter's gate or rate, or the retries, change; until cancelled."""
    limiter = client.limiter
    last: Activity | None = None
    while True:
        if limiter is not None:
            now = Activity(
                limiter.gate_closed, limiter.current_rate, round(limiter.gate_wait), client.retrying
            )
        else:
            now = Activity(retrying=client.retrying)
        if now != last:
            reporter.throttle(now)
            last = now
        await asyncio.sleep(THROTTLE_POLL)
