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
from typing import Protocol, TextIO

from pipeline.keys import safe_key
from pipeline.output.terminal import shown

#: How often the throttling shown is brought up to date, in seconds.
THROTTLE_POLL = 0.25


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
        print(shown(f"facesync: {text}"), file=self.stream, flush=True)

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
        self.progress.console.print(shown(text), markup=False, highlight=False)

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


class Throttling(Protocol):
    """What the reporter shows of the limiter: whether the gate is closed, and the rate paced to."""

    @property
    def gate_closed(self) -> bool: ...
    @property
    def current_rate(self) -> float | None: ...


async def watch_throttling(limiter: Throttling | None, reporter: Reporter) -> None:
    """Tell ``reporter`` whenever the limiter's gate or rate changes; runs until cancelled."""
    if limiter is None:
        return
    last: tuple[bool, float | None] | None = None
    while True:
        now = (limiter.gate_closed, limiter.current_rate)
        if now != last:
            reporter.throttle(*now)
            last = now
        await asyncio.sleep(THROTTLE_POLL)
