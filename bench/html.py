"""The HTML report for an archive with 10,000 refused files: its size, and how long it takes to write.

An archive of ``BENCH_HTML_REFUSED`` (10,000) camera-sized JPEGs (3000×2000, ~1 MB: 40 distinct
pictures, hard-linked under the other names, so the tree costs 40 MB of disk), each held as
``rejected`` in a state DB that also holds ``BENCH_HTML_SYNCED`` (90,000) synced rows and 30 runs;
built directly (no upload) and reused. Measured: ``facesync report --html`` as a child process on the
client CPUs (wall time, peak RSS, the page's size), with the default cap of thumbnails and with
no cap (all 10,000: why the cap exists); and, in this process, a thumbnail with Pillow's draft mode
against the same thumbnail with draft mode turned off (the JPEG decoded whole), median of rounds.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import time
from pathlib import Path

from bench.common import CLIENT_CPUS, OUT, Figure, facesync, log, median, rounds, wait_quiet, write_config
from pipeline.cli.report_html import DEFAULT_MAX_THUMBNAILS
from pipeline.state import Row, State, Status

REFUSED = int(os.environ.get("BENCH_HTML_REFUSED", "10000"))
SYNCED = int(os.environ.get("BENCH_HTML_SYNCED", "90000"))
ROUNDS = rounds("html", 3)
DISTINCT = 40
PHOTO = (3000, 2000)
SIZE_TARGET_MB = 15.0
TIME_TARGET_S = 10.0
DRAFT_SAMPLE = 40
MESSAGE = "add: HTTP 400, status_code 3: Incorrect image format: no face could be found in the image"


def photo(seed: int) -> bytes:
    """A camera-sized JPEG that compresses like a photo: soft shapes over a gradient, some grain."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    w, h = PHOTO
    small = Image.new("RGB", (w // 8, h // 8))
    draw = ImageDraw.Draw(small)
    top = [rng.randrange(256) for _ in range(3)]
    bottom = [rng.randrange(256) for _ in range(3)]
    for y in range(h // 8):
        t = y / (h // 8)
        draw.line(
            [(0, y), (w // 8, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    for _ in range(12):
        x0, y0 = rng.randrange(w // 8), rng.randrange(h // 8)
        box = [x0, y0, x0 + rng.randrange(20, 160), y0 + rng.randrange(20, 120)]
        draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    big = small.resize(PHOTO, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(3))
    grain = Image.frombytes("L", PHOTO, rng.randbytes(w * h)).convert("RGB")
    buf = io.BytesIO()
    Image.blend(big, grain, 0.08).save(buf, "JPEG", quality=88)
    return buf.getvalue()


def key(i: int) -> str:
    return f"album{i % 20:02d}/refused/IMG_{i:06d}.jpg"


def build() -> tuple[Path, Path]:
    """The tree and its state DB (rows, runs), built once and reused while complete."""
    base = OUT / f"html-{REFUSED}-{SYNCED}"
    tree, state = base / "tree", base / "state.db"
    marker = base / ".complete"
    if marker.exists():
        return tree, state
    log(f"html: building {REFUSED:,} refused photos ({DISTINCT} distinct, hard-linked) and the state ...")
    shutil.rmtree(base, ignore_errors=True)
    originals = base / "originals"
    originals.mkdir(parents=True)
    for n in range(DISTINCT):
        (originals / f"{n}.jpg").write_bytes(photo(n))
    rows = []
    for i in range(REFUSED):
        path = tree / key(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(originals / f"{i % DISTINCT}.jpg", path)
        rows.append(Row(key(i), path.stat().st_size, 1, Status.REJECTED, code=3, message=MESSAGE, attempts=1))
    rows += [
        Row(f"album{i % 20:02d}/IMG_{i:07d}.jpg", 1, 1, Status.SYNCED, sha256=f"{i:064x}", remote_id=i + 1)
        for i in range(SYNCED)
    ]
    rows.sort(key=lambda r: r.key.encode())
    with State.open(state) as db:
        db.put_many(rows)
        for n in range(30):
            run = db.start_run("sync")
            counts = {
                "added": 50 + n,
                "replaced": n % 4,
                "removed": n % 3,
                "rejected": {"3": n},
                "throttled": n % 5,
            }
            db.finish_run(run, exit_code=0, counts=counts)
    marker.write_text("ok")
    return tree, state


def measure(config: Path, page: Path, *extra: str) -> tuple[float, float, float]:
    """One ``facesync report``: wall seconds, page MB, peak RSS MB."""
    wait_quiet()
    done = facesync(config, "report", "--html", str(page), *extra)
    if done.returncode != 0:
        raise RuntimeError(f"html bench: report exited {done.returncode}: {done.stderr[-2000:]}")
    return done.wall, page.stat().st_size / 1e6, done.maxrss_mb


def draft_speedup(tree: Path) -> tuple[float, float]:
    """Median seconds per thumbnail with draft mode and with it disabled (Pillow's thumbnail() calls
    draft() itself, so the no-op replaces both), in this process on the client CPUs."""
    from PIL.JpegImagePlugin import JpegImageFile

    from pipeline.output.thumbs import thumbnails

    paths = [tree / key(i) for i in range(DRAFT_SAMPLE)]
    real_draft = JpegImageFile.draft

    def whole(self: JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> None:
        return None  # no draft: the decoder makes every pixel

    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, CLIENT_CPUS)
    timed: dict[str, list[float]] = {"draft": [], "whole": []}
    try:
        for _ in range(ROUNDS):
            for name in timed:
                JpegImageFile.draft = real_draft if name == "draft" else whole  # type: ignore[method-assign]
                started = time.perf_counter()
                thumbnails(paths)
                timed[name].append((time.perf_counter() - started) / len(paths))
    finally:
        JpegImageFile.draft = real_draft  # type: ignore[method-assign]
        os.sched_setaffinity(0, before)
    return median(timed["draft"]), median(timed["whole"])


def run() -> list[Figure]:
    tree, state = build()
    base = tree.parent
    config = write_config(
        base / "facesync.json", base_url="http://127.0.0.1:9/api/v2/face_search", source=tree, state=state
    )
    capped, whole = [], []
    for n in range(ROUNDS):
        capped.append(measure(config, base / "report.html"))
        log(f"html round {n + 1}: default cap {capped[-1][0]:.2f} s, {capped[-1][1]:.1f} MB")
    for n in range(max(1, ROUNDS // 2)):
        whole.append(measure(config, base / "report-all.html", "--max-thumbnails", str(REFUSED)))
        log(f"html round {n + 1}: no cap {whole[-1][0]:.2f} s, {whole[-1][1]:.1f} MB")
    with_draft, without = draft_speedup(tree)
    log(
        f"html: a thumbnail takes {with_draft * 1000:.1f} ms with draft mode, {without * 1000:.1f} ms without"
    )
    wall, size, rss = (median([m[i] for m in capped]) for i in range(3))
    all_wall, all_size, all_rss = (median([m[i] for m in whole]) for i in range(3))
    rows = f"{REFUSED:,} refused + {SYNCED:,} synced rows, 30 runs"
    return [
        Figure(
            f"html report size, {REFUSED // 1000}k refused",
            size,
            "MB",
            f"<= {SIZE_TARGET_MB:g} MB",
            size / SIZE_TARGET_MB,
            size <= SIZE_TARGET_MB,
            f"{DEFAULT_MAX_THUMBNAILS:,} thumbnails (the default cap), the rest counted; {rows}",
        ),
        Figure(
            f"html report time, {REFUSED // 1000}k refused",
            wall,
            "s",
            f"<= {TIME_TARGET_S:g} s",
            wall / TIME_TARGET_S,
            wall <= TIME_TARGET_S,
            f"whole `facesync report` process on 1 CPU, median of {ROUNDS}; peak RSS {rss:.0f} MB",
        ),
        Figure(
            f"html report, all {REFUSED // 1000}k thumbnails (no cap)",
            all_size,
            "MB",
            "measured, not a target",
            None,
            None,
            f"{all_wall:.1f} s, peak RSS {all_rss:.0f} MB: why the page caps its thumbnails",
        ),
        Figure(
            "thumbnail of a 6 MP JPEG, draft mode",
            with_draft * 1000,
            "ms",
            f"< without draft ({without * 1000:.1f} ms)",
            with_draft / without,
            with_draft < without,
            f"{without / with_draft:.1f}x faster than decoding it whole",
        ),
    ]


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
