"""What every benchmark shares: measured subprocesses, the emulator in its own process, configs, figures.

The client under test always runs as ``python -m pipeline ... sync|reconcile`` in a child process, so
its wall time, CPU and peak RSS are that process's alone (``os.wait4``), and the emulator runs in
another child (``python -m bench.server``) so its CPU never counts as the client's.
"""

from __future__ import annotations

import io
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Everything a bench builds (archives, trees, state DBs, emulator data) lives here; git-ignored.
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "out"))
PY = sys.executable
API_KEY = "demo-key"
API_SECRET = "demo-secret"


@dataclass
class Figure:
    """One row of the final table."""

    name: str
    value: float | None
    unit: str
    target: str
    #: The figure as a fraction of its target's bound (<= 1 or >= 1 depending on the target), if any.
    ratio: float | None
    ok: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.ok]


@dataclass
class Measured:
    """One finished child process: wall time, CPU, peak RSS and its output."""

    wall: float
    user: float
    sys: float
    maxrss_mb: float
    returncode: int
    stdout: str
    stderr: str

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def json(self) -> dict[str, Any]:
        """The last line of stdout as JSON (``--json`` prints one object)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            raise RuntimeError(f"no output (exit {self.returncode}); stderr: {self.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result


def split_cpus() -> tuple[set[int], set[int]]:
    """The CPUs for the server and for the client under test: half each (both all CPUs on one).

    On a small machine a client and a server on the same cores compete for them, and the client's CPU
    would slow the *server* down; pinned apart, each figure compares clients against the same server.
    ``BENCH_PIN=0`` turns pinning off.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or os.environ.get("BENCH_PIN", "1") == "0":
        return set(cpus), set(cpus)
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


SERVER_CPUS, CLIENT_CPUS = split_cpus()


def _pin(cpus: set[int]) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, cpus)


def run_measured(cmd: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd`` (on the client CPUs) to the end; its own rusage (``wait4``), not every child's.

    The peak RSS is the child's ``VmHWM`` (``/proc/PID/status``), read every :data:`HWM_EVERY` seconds
    while it runs: ``ru_maxrss`` would not do, as Linux carries into it the RSS the child had the moment
    it was forked, which is this bench process's (with a million ids and rows just written to a state,
    a child that never exceeds 48 MB reports 143). ``VmHWM`` is the exec'd program's own; only growth in
    its last few milliseconds could be missed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, preexec_fn=_pin(CLIENT_CPUS))
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            time.sleep(HWM_EVERY)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            wall=wall,
            user=usage.ru_utime,
            sys=usage.ru_stime,
            maxrss_mb=peak_kb / 1024 if peak_kb else usage.ru_maxrss / 1024,
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


#: How often a measured child's peak RSS is read while it runs (seconds).
HWM_EVERY = 0.005


def _vm_hwm_kb(pid: int) -> int:
    """A running process's peak resident set (kB), or 0 once it is gone (or on a system without /proc)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def compile_package() -> None:
    """Byte-compile ``pipeline/`` (and ``bench/``) once, as ``pip install`` does for an installed
    facesync: an editable checkout run with ``PYTHONDONTWRITEBYTECODE`` (this machine sets it) would
    otherwise compile every changed module from source in each measured child, ~80 ms of a run."""
    import compileall

    for package in ("pipeline", "bench"):
        compileall.compile_dir(ROOT / package, quiet=1)


def facesync(config: Path, *args: str) -> Measured:
    """``python -m pipeline --config CONFIG ARGS...`` as a measured child.

    With ``BENCH_PATCH=name,...`` the proposed changes of :mod:`bench.patched` are applied first.
    """
    patch = os.environ.get("BENCH_PATCH")
    command = [PY, "-m", "bench.patched", patch, "--"] if patch else [PY, "-m", "pipeline"]
    return run_measured([*command, "--config", str(config), *args])


def write_config(
    path: Path,
    *,
    base_url: str,
    source: Path,
    state: Path,
    limits: dict[str, Any] | None = None,
    **sections: Any,
) -> Path:
    """A facesync config (JSON is YAML) for ``source`` and ``state`` against ``base_url``; ``sections``
    are further top-level sections (``transform={...}``)."""
    data = {
        "api": {"base_url": base_url, "api_key": API_KEY, "api_secret": API_SECRET},
        "source": {"path": str(source)},
        "state": {"path": str(state)},
        "limits": {"max_delete": "100%", **(limits or {})},
        **sections,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def fresh_state(path: Path) -> None:
    """Remove a state DB and its WAL, SHM and lock files."""
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(path) + suffix).unlink(missing_ok=True)


@dataclass
class Server:
    """The emulator in its own process (``python -m bench.server``), steered over its control routes."""

    data_dir: Path
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    seed_ids: Path | None = None
    base_url: str = ""
    _proc: subprocess.Popen[bytes] | None = None

    #: What the figures call it.
    label = "emulator"

    def command(self) -> list[str]:
        cmd = [PY, "-m", "bench.server", "--data", str(self.data_dir)]
        cmd += ["--settings", json.dumps(self.settings)]
        if self.seed:
            cmd += ["--seed", str(self.seed)]
            if self.seed_ids is not None:
                cmd += ["--seed-ids", str(self.seed_ids)]
        return cmd

    def seeded_ids(self) -> list[Any]:
        """The ids of the seeded images, in seeding order (``seed_ids`` must have been given)."""
        assert self.seed_ids is not None
        ids: list[Any] = json.loads(self.seed_ids.read_text())
        return ids

    def __enter__(self) -> Server:
        cmd = self.command()
        self._proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, preexec_fn=_pin(SERVER_CPUS))
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the bench server did not start (exit {self._proc.wait()})")
        self.base_url = json.loads(line)["base_url"]
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def control(self, method: str, path: str, body: Any = None) -> Any:
        root = self.base_url.split("/api/", 1)[0]
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{root}/_emulator/{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())

    def configure(self, **changes: Any) -> None:
        self.control("POST", "settings", changes)

    def reset(self) -> None:
        self.control("POST", "reset", {})

    def requests(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.control("GET", "requests")
        return found

    def cpu_seconds(self) -> float:
        """user + sys CPU of the server process so far (from /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sink(Server):
    """The light sink (``python -m bench.sink``) in its own process on the server CPUs: the API's
    answers with no work behind them, so a ratio to a bare client shows the client's own cost.
    ``settings`` may hold ``seed_kind`` (``legacy`` or ``facesync``)."""

    label = "sink"

    def command(self) -> list[str]:
        cmd = [PY, "-m", "bench.sink", "--seed", str(self.seed)]
        return [*cmd, "--seed-kind", str(self.settings.get("seed_kind", "legacy"))]

    def seeded_ids(self) -> list[Any]:
        return list(range(1, self.seed + 1))

    def requests(self) -> list[dict[str, Any]]:
        raise NotImplementedError("the sink keeps no request log")


def server_for(kind: str, data_dir: Path, **options: Any) -> Server:
    """The emulator or the sink, by name (``BENCH_SERVERS``)."""
    return Sink(data_dir, **options) if kind == "sink" else Server(data_dir, **options)


#: Which servers the upload and reconcile benches run against, in order.
SERVERS = [s for s in os.environ.get("BENCH_SERVERS", "sink,emulator").split(",") if s]


# -- inputs ---------------------------------------------------------------------------------------------


def jpeg_noise(rng: random.Random, size: tuple[int, int], quality: int) -> bytes:
    """A distinct, valid JPEG: random pixels (so no two share a hash or a perceptual hash)."""
    from PIL import Image

    w, h = size
    buf = io.BytesIO()
    Image.frombytes("RGB", size, rng.randbytes(w * h * 3)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def image_archive(where: Path, count: int, size: tuple[int, int], quality: int = 85) -> Path:
    """``count`` distinct JPEGs under ``where`` (10 folders), built once and reused while complete."""
    marker = where / ".complete"
    wanted = f"{count} {size} {quality}"
    if marker.exists() and marker.read_text() == wanted:
        return where
    rng = random.Random(count)
    for i in range(count):
        path = where / f"album{i % 10:02d}" / f"IMG_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_noise(rng, size, quality))
    marker.write_text(wanted)
    return where


def archive_bytes(where: Path) -> int:
    return sum(p.stat().st_size for p in where.rglob("*.jpg"))


# -- the machine ----------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def log(text: str) -> None:
    """Progress on stderr; the figures go to stdout."""
    print(text, file=sys.stderr, flush=True)


def rounds(bench: str, default: int) -> int:
    """How many rounds a bench runs: ``BENCH_<BENCH>_ROUNDS``, else ``BENCH_ROUNDS``, else ``default``
    (an empty variable counts as unset).

    The upload and no-op figures sit near their targets, and one round's ratio there has a standard
    deviation of about 0.11 on this machine (docs/performance.md, round 7), so they default to 7
    rounds: the median of 7 then has a standard error of about 0.05, the median of 3 about 0.07.
    """
    for name in (f"BENCH_{bench.upper()}_ROUNDS", "BENCH_ROUNDS"):
        if raw := os.environ.get(name):
            if not raw.isdigit() or int(raw) < 1:
                raise SystemExit(f"{name}: expected a whole number of rounds (1 or more), got {raw!r}")
            return int(raw)
    return default


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait


def wait_quiet(busy_below: float = 0.25, longest: float = 30.0) -> float:
    """Wait (up to ``longest`` s) until the machine is mostly idle, so other work skews a run less.

    Returns the busy share of the last half-second sample (noted with the figures).
    """
    deadline = time.monotonic() + longest
    while True:
        total0, idle0 = _cpu_times()
        time.sleep(0.5)
        total1, idle1 = _cpu_times()
        busy = 1.0 - (idle1 - idle0) / max(1, total1 - total0)
        if busy < busy_below or time.monotonic() >= deadline:
            if busy >= busy_below:
                log(f"note: the machine is still {busy:.0%} busy with other work; measuring anyway")
            return busy
