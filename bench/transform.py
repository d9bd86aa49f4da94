"""``transform:`` (issue 16): 500 camera-size JPEGs (~4 MB, 12 MP) sent as they are, or downscaled.

The same archive is synced into an empty collection four ways: the transform off and on (``max_side``
1600, JPEG quality 85: the defaults), over loopback and with the emulator reading request bodies at
100 Mbit/s (its ``bandwidth_mbit`` knob: a home or office uplink, shared by all connections). For
each: the bytes sent (the images as the emulator stores them), images per second (the report's
``elapsed``: scan, read, hash, transform, encode, send, record) and the client's CPU per image (user +
sys of the whole ``facesync`` process, its image threads included). The client runs on its own CPU
(pinned, as every bench), so the transform's pool has one thread here. Targets: at least 8 times
fewer bytes, and at least 5 times the images per second at 100 Mbit/s; the loopback figures are
reported as they come. First, :mod:`bench.decoders`: which decoder and resize (Pillow's ways, libvips'),
by CPU per image and quality against a reference resize.

The photos are made once (smooth colour under grey grain, like a camera's, so they compress as a
camera's do) and kept under ``bench/out/transform``. Knobs: ``BENCH_TRANSFORM_IMAGES`` (500),
``BENCH_TRANSFORM_MBIT`` (100), ``BENCH_TRANSFORM_SLOW_ROUNDS`` (1: a run sent as it is takes about
3.5 minutes at 100 Mbit/s, and a bandwidth-bound figure barely moves).
"""

from __future__ import annotations

import io
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import (
    OUT,
    Figure,
    Server,
    facesync,
    fresh_state,
    log,
    median,
    rounds,
    wait_quiet,
    write_config,
)

IMAGES = int(os.environ.get("BENCH_TRANSFORM_IMAGES", "500"))
MBIT = float(os.environ.get("BENCH_TRANSFORM_MBIT", "100"))
ROUNDS = rounds("transform", 3)
SLOW_ROUNDS = int(os.environ.get("BENCH_TRANSFORM_SLOW_ROUNDS", "1"))
SIZE = (4000, 3000)
BYTES_TARGET = 8.0
RATE_TARGET = 5.0


def camera_photo(seed: int) -> bytes:
    """A 12 MP JPEG of about 4 MB: blurred colour blobs under grey grain, at quality 90."""
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    blobs = Image.frombytes("RGB", (200, 150), rng.randbytes(200 * 150 * 3))
    small = blobs.filter(ImageFilter.GaussianBlur(2))
    grain = Image.effect_noise(SIZE, 40).convert("RGB")  # seeded by Pillow's own RNG: every photo differs
    photo = Image.blend(small.resize(SIZE, Image.Resampling.BICUBIC), grain, 0.2)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    return out.getvalue()


def _write(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(camera_photo(seed))


def camera_archive(where: Path, count: int) -> Path:
    """``count`` camera photos under ``where`` (10 folders), made once on every CPU and reused."""
    marker = where / ".complete"
    wanted = f"{count} {SIZE} v1"
    if marker.exists() and marker.read_text() == wanted:
        return where
    log(f"transform: making {count} camera photos of {SIZE[0]}x{SIZE[1]} (once; kept in {where}) ...")
    shutil.rmtree(where, ignore_errors=True)
    paths = [where / f"DCIM{i % 10:03d}" / f"IMG_{i:05d}.jpg" for i in range(count)]
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write, paths, range(count), chunksize=8))
    marker.write_text(wanted)
    return where


def _sync(
    server: Server, base: Path, archive: Path, *, transform: bool, mbit: float | None
) -> dict[str, Any]:
    """One sync of the whole archive into an empty collection: its rate, CPU and bytes sent."""
    state = base / "state.db"
    sections: dict[str, Any] = {"transform": {"max_side": 1600, "quality": 85}} if transform else {}
    path = base / f"config-{'on' if transform else 'off'}.json"
    config = write_config(path, base_url=server.base_url, source=archive, state=state, **sections)
    wait_quiet()
    server.reset()
    server.configure(bandwidth_mbit=mbit)
    fresh_state(state)
    m = facesync(config, "sync", "--json")
    report = m.json()
    if report["added"] != IMAGES or m.returncode != 0:
        added, code = report["added"], m.returncode
        raise RuntimeError(f"sync added {added} of {IMAGES} (exit {code}): {m.stderr[-2000:]}")
    sent = sum(int(image["size"]) for image in server.control("GET", "images"))
    figures = {
        "rate": IMAGES / report["elapsed"],
        "cpu": m.cpu / IMAGES,
        "bytes": sent,
        "transformed": report.get("transformed", 0),
        "rss": m.maxrss_mb,
    }
    where = f"{mbit:g} Mbit/s" if mbit else "loopback"
    log(
        f"transform {'on ' if transform else 'off'} {where}: {figures['rate']:.1f} img/s, "
        f"client CPU {figures['cpu'] * 1000:.0f} ms/img, sent {sent / 1e6:.0f} MB "
        f"({figures['transformed']} transformed), peak RSS {m.maxrss_mb:.0f} MB"
    )
    return figures


def _median(runs: list[dict[str, Any]], name: str) -> float:
    return median([float(r[name]) for r in runs])


def run() -> list[Figure]:
    from bench import decoders

    found = decoders.run()  # decode and resize, way by way (issue 23), before the syncs
    base = OUT / "transform"
    archive = camera_archive(base / "archive", IMAGES)
    raw = sum(p.stat().st_size for p in archive.rglob("*.jpg"))
    shutil.rmtree(base / "emulator", ignore_errors=True)
    runs: dict[tuple[bool, float | None], list[dict[str, Any]]] = {}
    with Server(base / "emulator") as server:
        for mbit, rounds in ((None, ROUNDS), (MBIT, SLOW_ROUNDS)):
            for _ in range(rounds):
                for transform in (False, True):
                    figures = _sync(server, base, archive, transform=transform, mbit=mbit)
                    runs.setdefault((transform, mbit), []).append(figures)
    off, on = runs[(False, None)], runs[(True, None)]
    slow_off, slow_on = runs[(False, MBIT)], runs[(True, MBIT)]
    fewer = _median(off, "bytes") / _median(on, "bytes")
    slow = _median(slow_on, "rate") / _median(slow_off, "rate")
    fast = _median(on, "rate") / _median(off, "rate")
    cpu = _median(on, "cpu") / _median(off, "cpu")
    each = f"{IMAGES} x {raw / IMAGES / 1e6:.1f} MB ({SIZE[0]}x{SIZE[1]}), max_side 1600, quality 85"
    return [
        *found,
        Figure(
            "transform: bytes sent",
            fewer,
            "x fewer",
            f">= {BYTES_TARGET:g} x fewer than off",
            fewer / BYTES_TARGET,
            fewer >= BYTES_TARGET,
            f"{_median(on, 'bytes') / 1e6:.0f} MB on vs {_median(off, 'bytes') / 1e6:.0f} MB off; {each}",
        ),
        Figure(
            f"transform: images/s at {MBIT:g} Mbit/s",
            _median(slow_on, "rate"),
            "img/s",
            f">= {RATE_TARGET:g} x off ({_median(slow_off, 'rate'):.2f} img/s)",
            slow,
            slow >= RATE_TARGET,
            f"the emulator reads bodies at {MBIT:g} Mbit/s; median of {SLOW_ROUNDS}; {slow:.1f} x",
        ),
        Figure(
            "transform: images/s over loopback",
            _median(on, "rate"),
            "img/s",
            f"as it comes (off: {_median(off, 'rate'):.1f} img/s)",
            fast,
            None,
            f"median of {ROUNDS}; {fast:.2f} x off; the client on one CPU",
        ),
        Figure(
            "transform: client CPU per image",
            _median(on, "cpu"),
            "s/img",
            f"as it comes (off: {_median(off, 'cpu'):.3f} s/img)",
            cpu,
            None,
            f"user+sys of the whole facesync process (its image thread included), loopback; {cpu:.1f} x off",
        ),
    ]


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
