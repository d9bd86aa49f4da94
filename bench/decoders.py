"""Which decoder ``transform:`` should use (issue 23): Pillow as it runs today against Pillow's other ways
down to ``max_side`` and against libvips (``pyvips``), on the transform bench's own camera JPEGs.

Each way takes the same 4000×3000 JPEG (made by :func:`bench.transform.camera_photo`) to 1600×1200
(``max_side`` 1600, the default), decode and resize only: the encode after it (Pillow, quality 85) is
the same for every way and timed on its own. For each, the CPU per image (``time.process_time``: every
thread of this process, so libvips' own worker threads count; libvips is held to one of them,
``VIPS_CONCURRENCY=1``, as the engine's pool gives each image one thread; its operation cache is off
so nothing is reused between images; the process is pinned to the client's CPU) and the quality
against a reference resize, Pillow ``LANCZOS`` from the full decode: PSNR over R, G and B, and SSIM
on luma over 8×8 blocks (Wang et al. 2004's constants), both computed with plain Pillow (no numpy
here). Ways are interleaved image by image, over ``BENCH_DECODERS_ROUNDS`` rounds (3) of
``BENCH_DECODERS_IMAGES`` photos (12); the figures are medians. Last, the whole
:func:`pipeline.engine.pixels.prepare` (decode, resize, encode) with the ``vips`` extra and with it
hidden: what ``transform:`` costs per image either way.

``python -m bench.decoders`` runs it alone; ``python -m bench transform`` runs it first. Without pyvips
(``pip install pyvips pyvips-binary``: its wheel ships libvips) its rows are left out.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("VIPS_CONCURRENCY", "1")  # before libvips starts: one thread per image

from PIL import Image, ImageChops, ImageMath, ImageStat

from bench.common import CLIENT_CPUS, OUT, Figure, log, median, wait_quiet
from pipeline.config import TransformConfig
from pipeline.engine.pixels import prepare

IMAGES = int(os.environ.get("BENCH_DECODERS_IMAGES", "12"))
ROUNDS = int(os.environ.get("BENCH_DECODERS_ROUNDS", "3"))
MAX_SIDE = 1600
QUALITY = 85
#: Below this PSNR (dB) against the reference a way does not count as "the same visual quality".
SAME_PSNR = 43.0

Way = Callable[[bytes], Image.Image]


def _opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _target(size: tuple[int, int]) -> tuple[int, int]:
    scale = MAX_SIDE / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def reference(data: bytes) -> Image.Image:
    """The reference: the full decode, Pillow LANCZOS down to ``max_side``."""
    img = _opened(data)
    img.load()
    return img.resize(_target(img.size), Image.Resampling.LANCZOS)


def pillow_today(data: bytes) -> Image.Image:
    """What ``transform:`` runs without the ``vips`` extra: :func:`pipeline.engine.pixels.decode`
    given no bytes (``draft`` ½, then bilinear)."""
    from pipeline.engine.pixels import decode

    return decode(_opened(data), MAX_SIDE)


def pipeline_vips(data: bytes) -> Image.Image:
    """What ``transform:`` runs with the ``vips`` extra: :func:`pipeline.engine.pixels.decode` given the
    bytes (libvips' shrink-on-load ½, then its linear resize)."""
    from pipeline.engine.pixels import decode

    return decode(_opened(data), MAX_SIDE, data)


def pillow_draft(resample: Image.Resampling) -> Way:
    def way(data: bytes) -> Image.Image:
        img = _opened(data)
        img.draft("RGB", _target(img.size))  # libjpeg scales as it decodes: ½ here (2000×1500)
        return img.resize(_target(img.size), resample)

    way.__name__ = f"pillow draft ½ + {resample.name.lower()}"
    return way


def pillow_reduce(data: bytes) -> Image.Image:
    """The full decode, ``reduce(2)`` (a box average) to 2000×1500, then bilinear."""
    img = _opened(data)
    img.load()
    factor = max(1, int(max(img.size) // MAX_SIDE))
    return img.reduce(factor).resize(_target(img.size), Image.Resampling.BILINEAR)


def pillow_reducing_gap(data: bytes) -> Image.Image:
    """The full decode, ``resize(..., reducing_gap=2.0)`` (Pillow reduces, then resamples)."""
    img = _opened(data)
    img.load()
    return img.resize(_target(img.size), Image.Resampling.BILINEAR, reducing_gap=2.0)


def _pyvips() -> Any:
    try:
        import pyvips
    except (ImportError, OSError):  # not installed, or its libvips missing
        return None
    pyvips.cache_set_max(0)
    return pyvips


def _to_pillow(image: Any) -> Image.Image:
    mode = {1: "L", 3: "RGB"}[image.bands]
    return Image.frombytes(mode, (image.width, image.height), image.write_to_memory())


def vips_shrink(kernel: str) -> Way:
    def way(data: bytes) -> Image.Image:
        pyvips = _pyvips()
        loaded = pyvips.Image.new_from_buffer(data, "", shrink=2, access="sequential")  # shrink-on-load ½
        return _to_pillow(loaded.resize(MAX_SIDE / max(loaded.width, loaded.height), kernel=kernel))

    way.__name__ = f"pyvips shrink-on-load ½ + {kernel}"
    return way


def vips_thumbnail(data: bytes) -> Image.Image:
    """libvips' own choice: ``thumbnail_buffer`` (it keeps a factor of 2 for its lanczos3: no
    shrink-on-load for a 2.5× reduction, so a full decode)."""
    return _to_pillow(_pyvips().Image.thumbnail_buffer(data, MAX_SIDE))


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB over all bands of two 8-bit images of one size."""
    rms = ImageStat.Stat(ImageChops.difference(a, b)).rms
    mse = sum(r * r for r in rms) / len(rms)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def ssim(a: Image.Image, b: Image.Image, block: int = 8) -> float:
    """Mean SSIM on luma over ``block``×``block`` tiles (means and moments by ``reduce``)."""
    x, y = a.convert("L").convert("F"), b.convert("L").convert("F")
    ev = ImageMath.lambda_eval
    mx, my = x.reduce(block), y.reduce(block)
    xx = ev(lambda n: n["x"] * n["x"], x=x).reduce(block)
    yy = ev(lambda n: n["y"] * n["y"], y=y).reduce(block)
    xy = ev(lambda n: n["x"] * n["y"], x=x, y=y).reduce(block)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    total, count = 0.0, 0
    planes = (m.get_flattened_data() for m in (mx, my, xx, yy, xy))
    for ux, uy, sxx, syy, sxy in zip(*planes, strict=True):
        vx, vy, cov = sxx - ux * ux, syy - uy * uy, sxy - ux * uy
        total += ((2 * ux * uy + c1) * (2 * cov + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        count += 1
    return total / count


def ways() -> list[Way]:
    found: list[Way] = [
        pillow_today,
        pillow_draft(Image.Resampling.BICUBIC),
        pillow_draft(Image.Resampling.LANCZOS),
        pillow_reduce,
        pillow_reducing_gap,
    ]
    if _pyvips() is not None:
        found += [vips_shrink("linear"), vips_shrink("lanczos3"), vips_thumbnail, pipeline_vips]
    else:
        log("decoders: pyvips is not installed (pip install pyvips pyvips-binary): its ways are left out")
    return found


def _name(way: Way) -> str:
    return {
        "pillow_today": "pillow draft ½ + bilinear (before; no extra)",
        "pipeline_vips": "pipeline decode, vips extra (after)",
        "pillow_reduce": "pillow full + reduce(2) + bilinear",
        "pillow_reducing_gap": "pillow full + bilinear, reducing_gap 2",
        "vips_thumbnail": "pyvips thumbnail_buffer",
    }.get(way.__name__, way.__name__)


def photos(where: Path, count: int) -> list[bytes]:
    """``count`` of the transform bench's camera photos, made once under ``where``."""
    from bench.transform import camera_photo

    where.mkdir(parents=True, exist_ok=True)
    out = []
    for seed in range(count):
        path = where / f"IMG_{seed:05d}.jpg"
        if not path.exists():
            path.write_bytes(camera_photo(seed))
        out.append(path.read_bytes())
    return out


def measure(images: list[bytes], rounds: int) -> dict[str, dict[str, float]]:
    """Per way: the median CPU (s) per image, and the worst and median PSNR and SSIM."""
    refs = [reference(data) for data in images]
    found = ways()
    cpu: dict[str, list[float]] = {_name(w): [] for w in found}
    quality: dict[str, list[tuple[float, float]]] = {_name(w): [] for w in found}
    encode: list[float] = []
    whole: dict[str, list[float]] = {}
    settings = TransformConfig(enabled=True, max_side=MAX_SIDE, quality=QUALITY)
    for round_ in range(rounds):
        wait_quiet()
        for data, ref in zip(images, refs, strict=True):
            for way in found:
                started = time.process_time()
                picture = way(data)
                cpu[_name(way)].append(time.process_time() - started)
                if picture.size != ref.size:
                    raise RuntimeError(f"{_name(way)} made {picture.size}, not {ref.size}")
                if round_ == 0:
                    quality[_name(way)].append((psnr(picture, ref), ssim(picture, ref)))
            started = time.process_time()
            picture.save(io.BytesIO(), "JPEG", quality=QUALITY)
            encode.append(time.process_time() - started)
            for name, hidden in (("prepare, no extra", True), ("prepare, vips extra", False)):
                if not hidden and _pyvips() is None:
                    continue
                with _vips_hidden(hidden):
                    started = time.process_time()
                    prepare(data, "jpeg", settings, 10_000_000)
                    whole.setdefault(name, []).append(time.process_time() - started)
    out = {}
    for name, times in cpu.items():
        scores = quality[name]
        out[name] = {
            "cpu": median(times),
            "psnr_min": min(p for p, _ in scores),
            "psnr": median([p for p, _ in scores]),
            "ssim_min": min(s for _, s in scores),
            "ssim": median([s for _, s in scores]),
        }
    out["encode"] = {"cpu": median(encode)}
    out.update({name: {"cpu": median(times)} for name, times in whole.items()})
    return out


@contextlib.contextmanager
def _vips_hidden(hidden: bool) -> Iterator[None]:
    """The pipeline's image work as without the ``vips`` extra, while ``hidden``."""
    from pipeline.engine import pixels

    found = pixels._vips
    if hidden:
        pixels._vips = lambda: None  # type: ignore[assignment]
    try:
        yield
    finally:
        pixels._vips = found


def run() -> list[Figure]:
    images = photos(OUT / "decoders", IMAGES)
    os.sched_setaffinity(0, CLIENT_CPUS)  # one CPU, as the client under test in every bench
    load = os.getloadavg()[0]
    found = measure(images, ROUNDS)
    encode = found.pop("encode")["cpu"]
    wholes = {name: found.pop(name)["cpu"] for name in list(found) if name.startswith("prepare")}
    today = found[_name(pillow_today)]
    log(
        f"decoders: {IMAGES} photos x {ROUNDS} rounds, load average {load:.1f} on {os.cpu_count()} CPUs; "
        f"encode q{QUALITY} {encode * 1000:.1f} ms for every way"
    )
    figures = []
    for name, cpu in wholes.items():
        log(f"decoders: pixels.{name:34s} {cpu * 1000:6.1f} ms CPU/img (decode, resize, encode)")
        figures.append(
            Figure(
                f"transform pixels.{name}",
                cpu,
                "s/img",
                "as it comes",
                cpu / wholes["prepare, no extra"],
                None,
                "decode, resize and encode of a 12 MP camera JPEG to 1600 px, quality 85",
            )
        )
    for name, f in found.items():
        same = f["psnr_min"] >= SAME_PSNR
        log(
            f"decoders: {name:40s} {f['cpu'] * 1000:6.1f} ms CPU/img  PSNR {f['psnr']:.2f} dB "
            f"(min {f['psnr_min']:.2f})  SSIM {f['ssim']:.4f} (min {f['ssim_min']:.4f})"
        )
        figures.append(
            Figure(
                f"transform decode+resize: {name}",
                f["cpu"],
                "s/img",
                "as it comes (today's way = 1.00)",
                f["cpu"] / today["cpu"],
                None,
                f"PSNR {f['psnr']:.1f} dB, SSIM {f['ssim']:.3f} against LANCZOS from the full decode"
                + ("" if same else f"; under {SAME_PSNR:g} dB: not the same quality"),
            )
        )
    return figures


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
