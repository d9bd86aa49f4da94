"""Run ``facesync`` with proposed changes applied in memory, to measure them before they are made.

Some of what the profile points at lives in files this bench's author could not edit at the time
(``pipeline/api/limiter.py``); each change proposed in docs/performance.md is written here as a patch,
so its effect is measured on the real command, by the same benches::

    BENCH_PATCH=slow_start .venv/bin/python -m bench upload reconcile rate

is ``python -m bench.patched slow_start -- --config X sync --json`` in place of ``python -m pipeline``.
A patch here is a measuring device, never the fix: the fix is the diff in docs/performance.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

#: Slow start multiplies the adaptive rate by this per rate-bound success (instead of adding 2 req/s).
SLOW_START_FACTOR = float(os.environ.get("BENCH_SLOW_START_FACTOR", "1.25"))


def slow_start() -> None:
    """Adaptive mode: grow the rate geometrically in slow start (x1.25: 10 → 1,000 req/s in ~21 answers)."""
    from pipeline.api import limiter as lim

    def on_success(self: lim.Limiter, permit: lim.Permit | None = None) -> None:
        permit = permit if permit is not None else lim._current.get()
        if permit is not None:
            permit.reported = True
        if self._spent or (permit is not None and permit.epoch != self._epoch):
            return
        if self._gate is lim._Gate.HALF_OPEN and (permit is None or permit.probe):
            self._gate = lim._Gate.OPEN
            self._streak = 0
            self._streak_start = None
            self._probe_out = False
            self._wake()
        elif self._gate is lim._Gate.OPEN and self._fixed is None:
            if self._slow_start:
                now = self._clock()
                self._recent.append(permit.at if permit is not None else now)
                self._forget_before(now - 1.0)
            if permit is None or permit.rate_bound:
                if self._slow_start:
                    rate = max(self._rate + lim.SLOW_START_STEP, self._rate * SLOW_START_FACTOR)
                else:
                    rate = self._rate + lim.INCREASE_STEP
                self._rate = min(lim.ADAPTIVE_MAX, rate)

    lim.Limiter.on_success = on_success  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {"slow_start": slow_start}


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--")
    for name in filter(None, ",".join(argv[:split]).split(",")):
        PATCHES[name]()
    from pipeline.cli import main as cli

    cli(args=argv[split + 1 :], prog_name="facesync")


if __name__ == "__main__":
    main()
