"""Peak disk use beside a state while a reconcile runs (issue 23): ``python -m bench.spill FOLDER``.

Samples every 20 ms until stopped (SIGINT or SIGTERM), then prints one JSON line: the peak of the
folder's total, and the peak of each part — the state (``state.db``, its WAL), the listing
(``<state>.listing``), SQLite's temporary files (the sorter's runs, the TEMP database), which it
unlinks as it opens them, so they are found through ``/proc/PID/fd`` of the ``python -m pipeline``
processes (``(deleted)`` links into FOLDER), and ``scratch``, the last two together (other files, such
as the bench's own, are ``other``, out of the total). Sizes are blocks allocated (``st_blocks`` × 512), each
inode counted once. Linux only; run as the same user as the client (or root).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

INTERVAL = 0.02


def _clients() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"-m\0pipeline" in cmdline:
            pids.append(int(entry))
    return pids


def _part(name: str) -> str:
    base = os.path.basename(name)
    if base.endswith(".listing"):
        return "listing"
    if "etilqs_" in base or base.endswith("(deleted)"):
        return "sqlite_temp"
    return "state" if base.startswith("state.db") else "other"


def sample(folder: Path, pids: list[int]) -> dict[str, int]:
    """Bytes allocated now, by part, of the files in ``folder`` and those the clients hold open there."""
    seen: dict[int, tuple[str, int]] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:  # not made yet, or made again
        entries = []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        seen[st.st_ino] = (_part(entry.name), st.st_blocks * 512)
    prefix = str(folder) + "/"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if not target.startswith(prefix):
                    continue
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if st.st_ino not in seen:
                seen[st.st_ino] = (_part(target), st.st_blocks * 512)
    parts = {"state": 0, "listing": 0, "sqlite_temp": 0, "other": 0}
    for part, size in seen.values():
        parts[part] += size
    parts["scratch"] = parts["listing"] + parts["sqlite_temp"]
    parts["total"] = parts["state"] + parts["scratch"]
    return parts


def main(argv: list[str]) -> int:
    folder = Path(argv[0]).resolve()
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    peak: dict[str, int] = {}
    at_peak: dict[str, int] = {}
    pids: list[int] = []
    refreshed = 0.0
    while not stop:
        now = time.monotonic()
        if now - refreshed > 0.5:
            pids, refreshed = _clients(), now
        parts = sample(folder, pids)
        for name, size in parts.items():
            peak[name] = max(peak.get(name, 0), size)
        if parts["scratch"] >= peak["scratch"]:
            at_peak = parts
        time.sleep(INTERVAL)
    print(json.dumps({"folder": str(folder), "peak": peak, "at_peak_scratch": at_peak}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
