"""Distinct, valid test images (and broken ones) made with Pillow, deterministic per seed.

Tests need many images whose content differs (so hashes and near-duplicate search tell them apart)
and a few files that only look like images.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def image_for(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """An RGB picture (random blocks on a random background) decided by ``seed``.

    The layout is in fractions of the size, so one seed at two sizes gives near-duplicates.
    """
    rng = random.Random(seed)
    img = Image.new("RGB", size, _colour(rng))
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(12):
        fx0, fy0 = rng.random(), rng.random()
        fx1, fy1 = rng.uniform(fx0, 1.0), rng.uniform(fy0, 1.0)
        draw.rectangle((int(fx0 * w), int(fy0 * h), int(fx1 * w), int(fy1 * h)), fill=_colour(rng))
    return img


def jpeg_bytes(seed: int, size: tuple[int, int] = (64, 64), quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image_for(seed, size).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(seed: int, size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    image_for(seed, size).save(buf, "PNG")
    return buf.getvalue()


def make_jpeg(path: Path, seed: int, size: tuple[int, int] = (64, 64)) -> Path:
    """Write a valid JPEG whose content depends on ``seed``; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(seed, size))
    return path


def make_png(path: Path, seed: int, size: tuple[int, int] = (64, 64)) -> Path:
    """Write a valid PNG whose content depends on ``seed``; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(seed, size))
    return path


def make_empty(path: Path) -> Path:
    """A 0-byte file (named like an image)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def make_text_as_jpeg(path: Path, text: str = "this is not a picture\n") -> Path:
    """A text file wearing an image's name (e.g. ``notes.jpg``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def truncated_jpeg_bytes(seed: int, size: tuple[int, int] = (64, 64), keep: float = 0.5) -> bytes:
    """A JPEG cut off part-way: the header parses, the pixels do not."""
    data = jpeg_bytes(seed, size)
    return data[: max(32, int(len(data) * keep))]


def make_truncated_jpeg(path: Path, seed: int, size: tuple[int, int] = (64, 64), keep: float = 0.5) -> Path:
    """Write a JPEG cut off part-way (Pillow opens it but cannot load it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(truncated_jpeg_bytes(seed, size, keep))
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_by_zero_png() -> bytes:
    """A whole PNG whose IHDR says 0×0 (Pillow will not write one; the format forbids it): it passes
    facesync's local checks and the service refuses it (code 3)."""
    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )
