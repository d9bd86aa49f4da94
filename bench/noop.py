"""The nightly no-op: ``facesync sync`` over a tree that is already synced, against ``rsync --dry-run``.

A tree of N tiny files (1,000 to a folder) and a state DB that holds every one of them as ``synced``
with the size and mtime ``os.fstat`` gives are built directly (no upload: the no-op never reads a file
and sends no request, which the bench checks on the emulator's log). Both are kept under ``bench/out``
and reused while complete. The baseline is ``rsync -a --dry-run --delete tree/ copy/`` on a synced copy
of the same tree; both are whole-process wall times, warm cache, median of alternating runs, at 100,000
files (``BENCH_NOOP_FILES``) and at ``BENCH_NOOP_BIG`` (default 1,000,000; 0 skips it). Peak RSS is
measured at both. The engine's own figure (the report's ``elapsed``: walk, state and merge, without the
interpreter's start and imports) is noted beside the whole process's. One extra run under
``python -X importtime`` checks that nothing that sends requests (aiohttp) is imported.

The package is byte-compiled before anything is timed (:func:`compile_package`), as ``pip install``
leaves it: an editable install run with ``PYTHONDONTWRITEBYTECODE=1`` (this machine's sessions set it)
would otherwise compile every module it imports from source on every run, 0.14 s of a 0.7 s no-op.
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import (
    OUT,
    PY,
    ROOT,
    Figure,
    Measured,
    Server,
    facesync,
    log,
    median,
    rounds,
    run_measured,
    wait_quiet,
    write_config,
)
from pipeline.engine.metadata import MetadataBuilder
from pipeline.sources.local import change_stamp
from pipeline.state import Row, State, Status

SMALL = int(os.environ.get("BENCH_NOOP_FILES", "100000"))
BIG = int(os.environ.get("BENCH_NOOP_BIG", "1000000"))
ROUNDS = rounds("noop", 7)
PER_DIR = 1000
CHUNK = 50_000
CONTENT = b"\xff\xd8\xff\xe0 a stand-in: the no-op never reads it\n"
RATIO_TARGET = 1.0
RSS_TARGET_MB = 100.0
RSS_GROWTH_TARGET = 1.2


def compile_package() -> None:
    """Byte-compile ``pipeline/`` where its ``.pyc`` files are missing or stale, as an installed
    facesync is (pip compiles at install): what is timed is the run, not the compiler. Written even with
    ``PYTHONDONTWRITEBYTECODE`` set, which only stops the interpreter writing them as it imports."""
    if not compileall.compile_dir(ROOT / "pipeline", quiet=1):
        raise RuntimeError("compileall failed on pipeline/")


def key(i: int) -> str:
    return f"d{i // PER_DIR:04d}/IMG_{i:07d}.jpg"


def build(n: int) -> tuple[Path, Path]:
    """The tree of ``n`` files and its fully synced state DB, built once (timed) and reused."""
    base = OUT / f"noop-{n}"
    tree, state = base / "tree", base / "state.db"
    marker = base / ".complete"
    if marker.exists() and marker.read_text() == f"{n} stamped" and state.exists():
        return tree, state
    log(f"noop: building a synced tree of {n:,} files (once; reused from {base}) ...")
    started = time.perf_counter()
    shutil.rmtree(base, ignore_errors=True)
    tree.mkdir(parents=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    now = time.time()
    meta = MetadataBuilder({})  # the no-op's config has no metadata template
    with State.open(state) as db:
        rows: list[Row] = []
        for i in range(n):
            k = key(i)
            if i % PER_DIR == 0:
                (tree / k).parent.mkdir()
            fd = os.open(tree / k, flags, 0o644)
            try:
                os.write(fd, CONTENT)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            rows.append(
                Row(
                    key=k,
                    size=st.st_size,
                    mtime_ns=st.st_mtime_ns,
                    etag=change_stamp(st),  # the ctime:inode a scan records (docs/state.md)
                    status=Status.SYNCED,
                    sha256=f"{i:064x}",
                    remote_id=i + 1,
                    token=f"{i:032x}",
                    meta_hash=meta.signature(
                        k, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=f"{i:064x}", sidecar=None
                    ),
                    updated_at=now,
                )
            )
            if len(rows) >= CHUNK:
                db.put_many(rows)
                rows = []
        db.put_many(rows)
    marker.write_text(f"{n} stamped")
    log(f"noop: built {n:,} files + state in {time.perf_counter() - started:.1f} s")
    return tree, state


def rsync_copy(tree: Path) -> Path | None:
    """A synced copy of ``tree`` for the rsync baseline; None (with a note) when rsync is missing."""
    if shutil.which("rsync") is None:
        log("noop: rsync is not installed (apt-get install rsync): the no-op ratio is not measured")
        return None
    copy = tree.parent / "copy"
    marker = tree.parent / ".copied"
    if not marker.exists():
        log("noop: rsync -a tree/ copy/ (once) ...")
        subprocess.run(["rsync", "-a", "--delete", f"{tree}/", f"{copy}/"], check=True)
        marker.write_text("ok")
    return copy


def noop_run(server: Server, tree: Path, state: Path, name: str, *prefix: str) -> Measured:
    """One ``facesync sync`` that must find nothing to do and send nothing (``prefix``: python flags)."""
    config = write_config(
        OUT / f"noop-{name}.json", base_url=server.base_url, source=tree, state=state, limits={}
    )
    server.reset()
    if prefix:
        m = run_measured([PY, *prefix, "-m", "pipeline", "--config", str(config), "sync", "--json"])
    else:
        m = facesync(config, "sync", "--json")
    report = m.json()
    sent = server.requests()
    if m.returncode != 0 or report["unchanged"] == 0 or report["added"] or report["removed"] or sent:
        raise RuntimeError(
            f"noop ({name}) was not a no-op: {report} {len(sent)} requests; {m.stderr[-2000:]}"
        )
    return m


def measure(server: Server, n: int) -> list[Figure]:
    """The no-op of ``n`` files against rsync, alternating, ``ROUNDS`` times: time and peak RSS."""
    tree, state = build(n)
    copy = rsync_copy(tree)
    noop_run(server, tree, state, f"warm-up-{n}")
    walls, engine, rss, rsync_walls = [], [], [], []
    cpus: list[float] = []
    rsync_cpus: list[float] = []
    for i in range(ROUNDS):
        wait_quiet()
        if copy is not None:
            r = run_measured(["rsync", "-a", "--dry-run", "--delete", f"{tree}/", f"{copy}/"])
            if r.returncode != 0:
                raise RuntimeError(f"rsync failed: {r.stderr}")
            rsync_walls.append(r.wall)
            rsync_cpus.append(r.cpu)
        m = noop_run(server, tree, state, str(n))
        walls.append(m.wall)
        cpus.append(m.cpu)
        engine.append(m.json()["elapsed"])
        rss.append(m.maxrss_mb)
        log(
            f"noop round {i + 1} ({n:,} files): facesync {m.wall:.2f} s (engine {engine[-1]:.2f} s, user "
            f"{m.user:.2f}, sys {m.sys:.2f}, RSS {m.maxrss_mb:.0f} MB)"
            + (f", rsync {rsync_walls[-1]:.2f} s (CPU {rsync_cpus[-1]:.2f})" if rsync_walls else "")
        )
    wall, inner, peak = median(walls), median(engine), max(rss)
    size = f"{n // 1000}k files"
    note = (
        f"whole process, median of {ROUNDS} ({n / wall:,.0f} files/s); the engine alone (walk, state, "
        f"merge) {inner:.2f} s"
    )
    if rsync_walls:
        base = median(rsync_walls)
        ratio = wall / base
        figure = Figure(
            f"nightly no-op, {size}",
            wall,
            "s",
            f"<= {RATIO_TARGET:g} x rsync ({base:.2f} s)",
            ratio,
            ratio <= RATIO_TARGET,
            f"{note} = {inner / base:.2f} x rsync; CPU {median(cpus):.2f} s against rsync's "
            f"{median(rsync_cpus):.2f} s = {median(cpus) / median(rsync_cpus):.2f} x",
        )
    else:
        figure = Figure(f"nightly no-op, {size}", wall, "s", "<= 1 x rsync", None, None, "rsync is missing")
    return [
        figure,
        Figure(
            f"no-op peak RSS, {size}",
            peak,
            "MB",
            f"<= {RSS_TARGET_MB:g} MB",
            peak / RSS_TARGET_MB,
            peak <= RSS_TARGET_MB,
            f"max of {ROUNDS} runs, whole process",
        ),
    ]


def imports(server: Server) -> Figure:
    """Whether the no-op imports aiohttp (``python -X importtime``), and what its imports cost."""
    tree, state = build(SMALL)
    m = noop_run(server, tree, state, "imports", "-X", "importtime")
    modules = [line.rsplit("|", 1)[-1].strip() for line in m.stderr.splitlines() if "|" in line]
    sending = sorted({name for name in modules if name.split(".")[0] == "aiohttp"})
    total = sum(
        int(line.split("|")[0].split(":")[1])
        for line in m.stderr.splitlines()
        if "import time:" in line and "self" not in line
    )
    return Figure(
        "no-op imports aiohttp",
        len(sending),
        "modules",
        "0: nothing that sends requests",
        None,
        not sending,
        f"{len(modules)} modules imported, {total / 1000:.0f} ms of imports (under -X importtime)",
    )


def run() -> list[Figure]:
    compile_package()
    with Server(OUT / "noop-emulator") as server:
        figures = measure(server, SMALL)
        small_rss = figures[1].value
        if BIG:
            big = measure(server, BIG)
            assert big[1].value is not None and small_rss is not None
            growth = big[1].value / small_rss
            big[1] = Figure(
                big[1].name,
                big[1].value,
                "MB",
                f"<= {RSS_TARGET_MB:g} MB and <= {RSS_GROWTH_TARGET} x the {SMALL // 1000}k figure",
                growth,
                big[1].value <= RSS_TARGET_MB and growth <= RSS_GROWTH_TARGET,
                f"ratio is to the {SMALL // 1000}k figure; {big[1].note}",
            )
            figures = [figures[0], big[0], figures[1], big[1]]
        figures.append(imports(server))
    return figures


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
