"""Upload throughput and client CPU: ``facesync sync`` of 2,000 and 10,000 new ~100 KB images vs a bare
aiohttp client, against the light sink (:mod:`bench.sink`) and, at 2,000, the emulator.

Same machine, same server process (no limits, on loopback), same concurrency (32), the same bodies. The
bare client runs three times a round: reading and encoding each body in the task that posts it
(``--stream``: the whole job, memory flat), the same also hashing each file (``--hash``), and with every
body encoded before the clock starts (timed over the posting only, and over its whole process, which
then holds 1.3 GB of bodies at 10,000 images). facesync is timed by its own report (``elapsed``: scan,
plan, read, sniff, hash, state intents, encode, POST, record) and over the whole process.

The figure held to the target is facesync's whole process against the streamed bare client's (the fair
one: holding every body costs the other a fault per fresh page, and its whole process swung 865–1,608
img/s between days). The two run back to back in each round, which goes first alternating, and the
target is held to the median of the rounds' ratios: the machine's speed drifts by tens of percent
between minutes (docs/performance.md), and a ratio of two medians taken minutes apart carried that
drift. The ratio of the medians is in the note beside it. Client CPU is the whole ``facesync`` process
(user + sys, from ``wait4``) per MB of image data uploaded (the raw files, not the base64 bodies).
"""

from __future__ import annotations

import os
import shutil

from bench.common import (
    OUT,
    PY,
    SERVERS,
    Figure,
    Measured,
    archive_bytes,
    facesync,
    fresh_state,
    image_archive,
    log,
    median,
    rounds,
    run_measured,
    server_for,
    wait_quiet,
    write_config,
)

#: Sizes run against the sink; the emulator (its own ceiling, what a user of ``serve`` sees) runs the
#: first only. At 2,000 images the interpreter's start is a sixth of a sink run; 10,000 amortises it.
SIZES = [int(n) for n in os.environ.get("BENCH_UPLOAD_SIZES", "2000,10000").split(",") if n]
CONCURRENCY = 32
ROUNDS = rounds("upload", 7)
#: 400x300 random pixels at quality 88 is ~100 KB a JPEG.
SIZE, QUALITY = (400, 300), 88
THROUGHPUT_TARGET = 0.90
CPU_TARGET = 0.01


def run() -> list[Figure]:
    figures: list[Figure] = []
    for kind in SERVERS:
        for images in SIZES if kind == "sink" else SIZES[:1]:
            figures += run_one(kind, images)
    return figures


def run_one(kind: str, images: int) -> list[Figure]:
    base = OUT / "upload"
    log(f"upload ({kind}): {images} images of ~100 KB (built once, reused) ...")
    archive = image_archive(base / f"archive-{images}", images, SIZE, QUALITY)
    mb = archive_bytes(archive) / 1e6
    state = base / "state.db"
    shutil.rmtree(base / "emulator", ignore_errors=True)
    bare_rates, bare_whole, fs_rates, fs_whole, cpu_per_mb, server_cpu = [], [], [], [], [], []
    bare_cpu: list[float] = []
    streamed_whole: list[float] = []
    streamed_cpu: list[float] = []
    cpus: list[float] = []
    hashing_whole: list[float] = []
    #: Each round's facesync against the streamed bare client run beside it (the figure held to the target).
    paired: list[float] = []
    with server_for(kind, base / "emulator") as server:
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
            if b["ok"] != images:
                raise RuntimeError(f"bare client stored {b['ok']} of {images}: {bare.stderr[-2000:]}")
            server.reset()
            stream = ["upload", "--stream", "--url", url, "--dir", str(archive), "-c", concurrency]
            hashing = run_measured([PY, "-m", "bench.bare", *stream, "--hash"])
            if (stored := hashing.json()["ok"]) != images:
                raise RuntimeError(f"bare client (streamed, hashing) stored {stored} of {images}")
            # The pair the target compares runs back to back, first one then the other in turn: the
            # machine's speed drifts between minutes (docs/performance.md), not within one pair.
            pair: dict[str, Measured] = {}
            for which in ("bare", "facesync") if n % 2 == 0 else ("facesync", "bare"):
                server.reset()
                if which == "bare":
                    pair[which] = run_measured([PY, "-m", "bench.bare", *stream])
                    if (stored := pair[which].json()["ok"]) != images:
                        raise RuntimeError(f"bare client (streamed) stored {stored} of {images}")
                else:
                    fresh_state(state)
                    cpu0 = server.cpu_seconds()
                    pair[which] = facesync(config, "sync", "--json")
                    server_cpu.append(server.cpu_seconds() - cpu0)
            streamed, m = pair["bare"], pair["facesync"]
            report = m.json()
            if report["added"] != images or m.returncode != 0:
                raise RuntimeError(f"facesync sync added {report['added']} of {images}: {m.stderr[-2000:]}")
            bare_rates.append(images / b["elapsed"])
            bare_whole.append(images / bare.wall)
            bare_cpu.append(bare.cpu / mb)
            streamed_whole.append(images / streamed.wall)
            streamed_cpu.append(streamed.cpu)
            hashing_whole.append(images / hashing.wall)
            fs_rates.append(images / report["elapsed"])
            fs_whole.append(images / m.wall)
            paired.append(streamed.wall / m.wall)
            cpu_per_mb.append(m.cpu / mb)
            cpus.append(m.cpu)
            log(
                f"upload ({kind}, {images}) round {n + 1}: bare {bare_rates[-1]:.0f} img/s posting "
                f"({bare_whole[-1]:.0f} whole process, {bare_cpu[-1]:.4f} s/MB), bare streamed "
                f"{streamed_whole[-1]:.0f} whole process (CPU {streamed.cpu:.2f} s; hashing too "
                f"{hashing_whole[-1]:.0f}, CPU {hashing.cpu:.2f} s), "
                f"facesync {fs_rates[-1]:.0f} img/s engine "
                f"({fs_whole[-1]:.0f} whole process, {paired[-1]:.2f} x the streamed), "
                f"client CPU {m.cpu:.2f} s "
                f"(user {m.user:.2f}, sys {m.sys:.2f}) = {cpu_per_mb[-1]:.4f} s/MB, "
                f"server CPU {server_cpu[-1]:.2f} s, peak RSS {m.maxrss_mb:.0f} MB"
            )
    bare_rate, bare_all, streamed_all = median(bare_rates), median(bare_whole), median(streamed_whole)
    fs_rate, whole = median(fs_rates), median(fs_whole)
    ratio = median(paired)
    cpu = median(cpu_per_mb)
    where = f"{images:,} x {mb / images * 1000:.0f} KB, {kind}"
    return [
        Figure(
            f"upload throughput, {where}",
            whole,
            "img/s",
            f">= {THROUGHPUT_TARGET:.2f} x bare ({streamed_all:.0f} img/s)",
            ratio,
            ratio >= THROUGHPUT_TARGET,
            f"whole process against the whole process of a bare client reading and encoding each body as "
            f"it posts it, run beside it in each round (CPU {median(cpus):.2f} s against "
            f"{median(streamed_cpu):.2f} s), concurrency {CONCURRENCY}, median of {ROUNDS} rounds' ratios "
            f"({', '.join(f'{r:.2f}' for r in paired)}; the medians' ratio {whole / streamed_all:.2f} x); "
            f"against that client also taking each file's sha256 "
            f"{median(hashing_whole):.0f} img/s = {whole / median(hashing_whole):.2f} x; "
            f"against the bare client that encodes every body first "
            f"{bare_all:.0f} img/s = {whole / bare_all:.2f} x; engine alone {fs_rate:.0f} img/s against "
            f"that client's posting alone {bare_rate:.0f} img/s = {fs_rate / bare_rate:.2f} x",
        ),
        Figure(
            f"client CPU per MB, {where}",
            cpu,
            "s/MB",
            f"<= {CPU_TARGET}",
            cpu / CPU_TARGET,
            cpu <= CPU_TARGET,
            f"user+sys of the whole facesync process over {mb:.0f} MB (the bare client's "
            f"{median(bare_cpu):.4f}); server CPU {median(server_cpu):.1f} s",
        ),
    ]


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
