"""Where the time goes: ``python -m bench.profile noop|upload|reconcile`` samples one run with py-spy.

py-spy is a profiling tool, not a project dependency: ``.venv/bin/pip install py-spy`` first. The run is
the same command the bench measures, against the same inputs (build them with the bench first); the
top lines (own time, then time including callees) of the busy samples are printed — idle threads
waiting on a queue or a selector are left out. ``BENCH_PROFILE_TOP=N`` prints N lines of each,
``BENCH_PROFILE_RAW=PATH`` keeps py-spy's collapsed stacks there.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import OUT, PY, ROOT, Server, Sink, compile_package, fresh_state, run_measured, write_config

IDLE = (
    "_worker (concurrent/futures/thread.py:81)",
    "Condition.wait",
    "EpollSelector.select",
    "Event.wait",
    "_wait_for_tstate_lock",
)


def top(raw: Path, count: int = 15) -> str:
    """The top ``count`` functions of a py-spy raw (collapsed stacks) file, by own and total time."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, n = line.rsplit(" ", 1)
        frames = stack.split(";")
        if frames[-1].startswith(IDLE):
            continue
        busy += int(n)
        frames = [re.sub(r":\d+\)", ")", f) for f in frames]
        own[frames[-1]] += int(n)
        for f in set(frames):
            total[f] += int(n)
    out = [f"{busy} busy samples", "", "own time:"]
    out += [f"  {100 * n / busy:5.1f}%  {f}" for f, n in own.most_common(count)]
    out += ["", "including callees (pipeline frames):"]
    ours = [(f, n) for f, n in total.most_common() if "pipeline/" in f and "cli.py" not in f]
    out += [f"  {100 * n / busy:5.1f}%  {f}" for f, n in ours[:count]]
    return "\n".join(out)


def main() -> int:
    what = sys.argv[1] if len(sys.argv) > 1 else "noop"
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"
        record = [spy, "record", "--rate", "250", "--format", "raw", "--output", str(raw), "--"]
        if what == "noop":
            tree = OUT / "noop-100000"
            with Server(OUT / "noop-emulator") as server:
                config = write_config(
                    Path(tmp) / "c.json",
                    base_url=server.base_url,
                    source=tree / "tree",
                    state=tree / "state.db",
                )
                run_measured([*record, PY, "-m", "pipeline", "--config", str(config), "sync", "--json"])
        elif what == "upload":
            # against the light sink (bench/sink.py): the client's own cost, not the emulator's
            base = OUT / "upload"
            images = os.environ.get("BENCH_PROFILE_IMAGES", "10000")
            with Sink(base / "sink-profile") as server:
                state = Path(tmp) / "state.db"
                fresh_state(state)
                config = write_config(
                    Path(tmp) / "c.json",
                    base_url=server.base_url,
                    source=base / f"archive-{images}",
                    state=state,
                    limits={"concurrency": 32},
                )
                run_measured([*record, PY, "-m", "pipeline", "--config", str(config), "sync", "--json"])
        elif what == "reconcile":
            # the inputs `python -m bench reconcile` built: the emulator's images and the state holding
            # every one of them (a clean listing: nothing to delete, nothing missing)
            base = OUT / "reconcile-emulator-100000"
            if not (base / "state.db").exists():
                print("run `python -m bench reconcile` first (it builds bench/out/reconcile-emulator-100000)")
                return 2
            with Server(base / "emulator") as server:
                config = write_config(
                    Path(tmp) / "c.json",
                    base_url=server.base_url,
                    source=base / "archive",
                    state=base / "state.db",
                    limits={"max_missing": "0%"},
                )
                run_measured([*record, PY, "-m", "pipeline", "--config", str(config), "reconcile", "--json"])
        elif what == "unheld":
            # a legacy collection on the sink (BENCH_PROFILE_IMAGES), refused by max-delete (exit 5)
            images = int(os.environ.get("BENCH_PROFILE_IMAGES", "1000000"))
            with Sink(Path(tmp) / "sink", seed=images) as server:
                state = Path(tmp) / "state.db"
                fresh_state(state)
                config = write_config(
                    Path(tmp) / "c.json",
                    base_url=server.base_url,
                    source=Path(tmp) / "archive",
                    state=state,
                    limits={"max_delete": "10%"},
                )
                (Path(tmp) / "archive").mkdir()
                run_measured([*record, PY, "-m", "pipeline", "--config", str(config), "reconcile", "--json"])
        else:
            print("python -m bench.profile noop|upload|reconcile|unheld", file=sys.stderr)
            return 2
        if keep := os.environ.get("BENCH_PROFILE_RAW"):
            shutil.copy(raw, keep)
        print(top(raw, int(os.environ.get("BENCH_PROFILE_TOP", "15"))).replace(str(ROOT) + "/", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
