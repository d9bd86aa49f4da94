"""Upload throughput and client CPU: ``facesync sync`` of 2,000 new ~100 KB images vs a bare aiohttp client.

Same machine, same emulator process (no limits, on loopback), same concurrency (32), the same bodies. The
bare client gets its bodies pre-encoded and is timed over the posting only; facesync is timed by its own
report (``elapsed``: scan, plan, read, sniff, hash, state intents, encode, POST, record) and, as a note,
over the whole process. Client CPU is the whole ``facesync`` process (user + sys, from ``wait4``) per MB
of image data uploaded (the raw files, not the base64 bodies).
"""

from __future__ import annotations

import os
import shutil

from bench.common import (
    OUT,
    PY,
    Figure,
    Server,
    archive_bytes,
    facesync,
    fresh_state,
    image_archive,
    log,
    median,
    run_measured,
    wait_quiet,
    write_config,
)

IMAGES = int(os.environ.get("BENCH_UPLOAD_IMAGES", "2000"))
CONCURRENCY = 32
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
#: 400x300 random pixels at quality 88 is ~100 KB a JPEG.
SIZE, QUALITY = (400, 300), 88
THROUGHPUT_TARGET = 0.90
CPU_TARGET = 0.01


def run() -> list[Figure]:
    base = OUT / "upload"
    log(f"upload: building {IMAGES} images of ~100 KB (reused once built) ...")
    archive = image_archive(base / "archive", IMAGES, SIZE, QUALITY)
    mb = archive_bytes(archive) / 1e6
    state = base / "state.db"
    shutil.rmtree(base / "emulator", ignore_errors=True)
    bare_rates, fs_rates, fs_whole, cpu_per_mb, server_cpu = [], [], [], [], []
    with Server(base / "emulator") as server:
        config = write_config(
            base / "config.json",
            base_url=server.base_url,
            source=archive,
            state=state,
            limits={"concurrency": CONCURRENCY},
        )
        for n in range(ROUNDS):
            wait_quiet()
            server.reset()
            url, concurrency = server.base_url, str(CONCURRENCY)
            bare = run_measured(
                [PY, "-m", "bench.bare", "upload", "--url", url, "--dir", str(archive), "-c", concurrency]
            )
            b = bare.json()
            if b["ok"] != IMAGES:
                raise RuntimeError(f"bare client stored {b['ok']} of {IMAGES}: {bare.stderr[-2000:]}")
            server.reset()
            fresh_state(state)
            cpu0 = server.cpu_seconds()
            m = facesync(config, "sync", "--json")
            server_cpu.append(server.cpu_seconds() - cpu0)
            report = m.json()
            if report["added"] != IMAGES or m.returncode != 0:
                raise RuntimeError(f"facesync sync added {report['added']} of {IMAGES}: {m.stderr[-2000:]}")
            bare_rates.append(IMAGES / b["elapsed"])
            fs_rates.append(IMAGES / report["elapsed"])
            fs_whole.append(IMAGES / m.wall)
            cpu_per_mb.append(m.cpu / mb)
            log(
                f"upload round {n + 1}: bare {bare_rates[-1]:.0f} img/s, facesync {fs_rates[-1]:.0f} img/s "
                f"(whole process {fs_whole[-1]:.0f}), client CPU {m.cpu:.2f} s "
                f"(user {m.user:.2f}, sys {m.sys:.2f}) = {cpu_per_mb[-1]:.4f} s/MB, "
                f"server CPU {server_cpu[-1]:.2f} s, peak RSS {m.maxrss_mb:.0f} MB"
            )
    bare_rate, fs_rate, whole = median(bare_rates), median(fs_rates), median(fs_whole)
    ratio = fs_rate / bare_rate
    cpu = median(cpu_per_mb)
    return [
        Figure(
            "upload throughput",
            fs_rate,
            "img/s",
            f">= {THROUGHPUT_TARGET:.2f} x bare ({bare_rate:.0f} img/s)",
            ratio,
            ratio >= THROUGHPUT_TARGET,
            f"{IMAGES} x {mb / IMAGES * 1000:.0f} KB, concurrency {CONCURRENCY}, median of {ROUNDS}; "
            f"whole process {whole:.0f} img/s = {whole / bare_rate:.2f} x bare",
        ),
        Figure(
            "client CPU per MB",
            cpu,
            "s/MB",
            f"<= {CPU_TARGET}",
            cpu / CPU_TARGET,
            cpu <= CPU_TARGET,
            f"user+sys of the whole facesync process over {mb:.0f} MB; server CPU {median(server_cpu):.1f} s",
        ),
    ]


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
