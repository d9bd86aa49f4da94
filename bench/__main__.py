"""``make bench``: run every benchmark (or those named), one after another, and print the final table.

    .venv/bin/python -m bench                  # all (the names: see BENCHES below)
    .venv/bin/python -m bench noop reconcile   # some
    BENCH_NOOP_BIG=0 BENCH_FIRSTSYNC_BIG=0 .venv/bin/python -m bench  # skip the 1,000,000-file trees

The table (Markdown) goes to stdout and, with the machine it ran on, to ``bench/out/results.md``;
progress goes to stderr. Benches never run concurrently with each other (the machine is small).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

from bench import firstsync, html, noop, rate, reads, reconcile, state, transform, upload
from bench.common import CLIENT_CPUS, OUT, SERVER_CPUS, Figure, compile_package, log, machine
from bench.patched import refusal
from bench.report import table

BENCHES: dict[str, Callable[[], list[Figure]]] = {
    "upload": upload.run,
    "rate": rate.run,
    "noop": noop.run,
    "firstsync": firstsync.run,
    "reconcile": reconcile.run,
    "state": state.run,
    "reads": reads.run,
    "html": html.run,
    "transform": transform.run,
}


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown bench {', '.join(unknown)}; known: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    patch = os.environ.get("BENCH_PATCH")
    reason = refusal([patch]) if patch else None
    if reason:
        print(f"BENCH_PATCH: {reason}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    compile_package()
    started = time.perf_counter()
    figures: list[Figure] = []
    for name in names:
        log(f"== {name}")
        figures += BENCHES[name]()
    info = machine()
    pinned = f"server on CPU {sorted(SERVER_CPUS)}, clients on CPU {sorted(CLIENT_CPUS)}"
    if patch:
        pinned += f"; with the proposed change(s) {patch} applied in memory (bench/patched.py)"
    lines = [
        table(figures),
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, Python {info['python']}, "
        f"Linux {info['kernel']}; {pinned}; {time.perf_counter() - started:.0f} s in all.",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    suffix = f"-{patch.replace(',', '-')}" if patch else ""
    (OUT / f"results{suffix}.md").write_text(text + "\n")
    (OUT / f"results{suffix}.json").write_text(
        json.dumps({"machine": info, "figures": [f.__dict__ for f in figures]}, indent=2) + "\n"
    )
    missed = [f.name for f in figures if f.ok is False]
    if missed:
        log(f"targets missed: {', '.join(missed)} (see docs/performance.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
