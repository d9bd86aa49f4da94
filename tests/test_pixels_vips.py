"""``transform:`` through libvips (the ``vips`` extra) and through Pillow alone: the same picture — size,
mode, orientation, pixels to within rounding — the same refusals, and the same bytes every time."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageChops, ImageStat

from pipeline.config import TransformConfig
from pipeline.engine import pixels
from pipeline.errors import Skipped
from pipeline.sources import TRUNCATED

pytest.importorskip("pyvips")

SETTINGS = TransformConfig(enabled=True, max_side=400)
LIMIT = 10_000_000


def photo(size: tuple[int, int], mode: str = "RGB", orientation: int = 1, seed: int = 3) -> bytes:
    """A JPEG of smooth colour blobs (a photo's spectrum), with an EXIF orientation."""
    rng = random.Random(seed)
    bands = len(mode)
    small = Image.frombytes(mode, (16, 12), rng.randbytes(16 * 12 * bands))
    img = small.resize(size, Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def psnr(a: Image.Image, b: Image.Image) -> float:
    import math

    rms = ImageStat.Stat(ImageChops.difference(a, b)).rms
    mse = sum(r * r for r in rms) / len(rms)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def both(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Image.Image, Image.Image]:
    """``data`` transformed through libvips, then through Pillow alone (pyvips hidden)."""
    assert pixels._vips_scaled(Image.open(io.BytesIO(data)), data, SETTINGS.max_side) is not None
    through_vips = Image.open(io.BytesIO(pixels.prepare(data, "jpeg", SETTINGS, LIMIT)))
    with monkeypatch.context() as m:
        m.setattr(pixels, "_vips", lambda: None)
        through_pillow = Image.open(io.BytesIO(pixels.prepare(data, "jpeg", SETTINGS, LIMIT)))
    return through_vips, through_pillow


@pytest.mark.parametrize(
    ("size", "mode", "orientation", "upright"),
    [
        ((1600, 1200), "RGB", 1, (400, 300)),  # shrink-on-load ¼, then 1:1
        ((1000, 750), "RGB", 6, (300, 400)),  # ½, then 0.8; turned a quarter
        ((3000, 1000), "L", 3, (400, 133)),  # ⅛ is too small: ½; grey
    ],
)
def test_libvips_and_pillow_make_the_same_upright_picture(
    size: tuple[int, int],
    mode: str,
    orientation: int,
    upright: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = photo(size, mode, orientation)
    through_vips, through_pillow = both(data, monkeypatch)
    assert (through_vips.size, through_vips.mode) == (upright, mode)
    assert (through_pillow.size, through_pillow.mode) == (upright, mode)
    assert psnr(through_vips, through_pillow) > 40


def test_the_same_file_makes_the_same_bytes_every_time() -> None:
    data = photo((1000, 750))
    assert len({pixels.prepare(data, "jpeg", SETTINGS, LIMIT) for _ in range(3)}) == 1


def test_a_cut_jpeg_is_left_to_pillow_and_refused_as_truncated(monkeypatch: pytest.MonkeyPatch) -> None:
    data = photo((1000, 750))[:3000]
    assert pixels._vips_scaled(Image.open(io.BytesIO(data)), data, SETTINGS.max_side) is None
    with pytest.raises(Skipped) as refused:
        pixels.prepare(data, "jpeg", SETTINGS, LIMIT)
    assert refused.value.reason == TRUNCATED


def test_cmyk_and_small_jpegs_are_pillows() -> None:
    cmyk = io.BytesIO()
    Image.new("CMYK", (1000, 750), (0, 50, 100, 0)).save(cmyk, "JPEG")
    small = photo((300, 200))
    for data in (cmyk.getvalue(), small):
        assert pixels._vips_scaled(Image.open(io.BytesIO(data)), data, SETTINGS.max_side) is None
