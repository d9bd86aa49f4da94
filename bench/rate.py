"""Rate use: how close ``facesync sync`` runs to a service's request rate, known and unknown.

The emulator (its own process) admits R = 20 requests/s over a sliding one-second window and answers
code 4 (HTTP 429) beyond it. 200 new images are synced with ``limits.rate: 20`` and then with
``limits.rate`` unset (adaptive). The rate used is read from the emulator's request log: (n - 1) over the
time from the first request to the last, which is exactly R for n requests evenly spaced at R.

``BENCH_RATE_IMAGES=40`` is a quick check that the bench runs, not a measurement: the handful of code-4
answers that end the adaptive limiter's slow start (5 at R = 20) is then over 10 % of the requests.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from bench.common import (
    OUT,
    Figure,
    Server,
    facesync,
    fresh_state,
    image_archive,
    log,
    wait_quiet,
    write_config,
)

R = 20.0
IMAGES = int(os.environ.get("BENCH_RATE_IMAGES", "200"))
KNOWN_TARGET = 0.97
UNKNOWN_TARGET = 0.90
UNKNOWN_THROTTLED = 0.05


def measure(server: Server, config_limits: dict[str, Any], name: str) -> tuple[float, int, int, str]:
    """Sync the archive once against a rate-limited emulator: (rate used, requests, code-4 answers, note)."""
    base = OUT / "rate"
    archive = image_archive(base / "archive", IMAGES, (96, 96), 90)
    state = base / f"state-{name}.db"
    fresh_state(state)
    wait_quiet()
    server.reset()
    server.configure(rate_limit=R)
    config = write_config(
        base / f"config-{name}.json",
        base_url=server.base_url,
        source=archive,
        state=state,
        limits=config_limits,
    )
    m = facesync(config, "sync", "--json")
    report = m.json()
    if report["added"] != IMAGES:
        raise RuntimeError(f"rate ({name}): added {report['added']} of {IMAGES}: {m.stderr[-2000:]}")
    log_ = [r for r in server.requests() if r["path"].endswith("/images")]
    times = sorted(r["time"] for r in log_)
    throttled = sum(1 for r in log_ if r["status_code"] == 4)
    used = (len(times) - 1) / (times[-1] - times[0])
    ok = len(log_) - throttled
    note = (
        f"{ok} stored + {throttled} throttled in {times[-1] - times[0]:.2f} s; "
        f"{ok / (times[-1] - times[0]):.2f} stored/s; sync elapsed {report['elapsed']:.2f} s"
    )
    log(f"rate ({name}): {used:.2f} req/s of {R:g}, {len(log_)} requests, {throttled} code 4; {note}")
    return used, len(log_), throttled, note


def run() -> list[Figure]:
    shutil.rmtree(OUT / "rate" / "emulator", ignore_errors=True)
    with Server(OUT / "rate" / "emulator") as server:
        known, _, known_throttled, known_note = measure(server, {"rate": R}, "known")
        unknown, requests, throttled, unknown_note = measure(server, {}, "unknown")
    share = throttled / requests
    return [
        Figure(
            "rate use, rate known",
            known,
            "req/s",
            f">= {KNOWN_TARGET} x R ({R:g}), 0 code 4",
            known / R,
            known / R >= KNOWN_TARGET and known_throttled == 0,
            f"{known_throttled} code-4 answers; {known_note}",
        ),
        Figure(
            "rate use, rate unknown",
            unknown,
            "req/s",
            f">= {UNKNOWN_TARGET} x R, <= {UNKNOWN_THROTTLED:.0%} code 4",
            unknown / R,
            unknown / R >= UNKNOWN_TARGET and share <= UNKNOWN_THROTTLED,
            f"{throttled} of {requests} requests ({share:.1%}) answered code 4; {unknown_note}",
        ),
    ]


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
