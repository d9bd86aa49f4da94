"""The image work of ``transform:``: decode small, upright, sRGB, no alpha; encode; fit a size. Pure.

Blocking and CPU-bound — Pillow releases the GIL while it decodes, resamples and encodes — so the
engine runs it in a pool of threads sized to the cores (:mod:`pipeline.engine.transform`).

A file that needs no change (a format not in ``convert``, no side over ``max_side``, upright, RGB or
grey, sRGB or no colour profile, no alpha, within the size limit) is sent as it is: that is judged
from its header, without decoding it. Otherwise it is decoded — a JPEG at 1/2, 1/4 or 1/8 scale
while that still leaves ``max_side`` pixels (``Image.draft``: libjpeg scales as it decodes, so a
12 MP photo costs a fraction of a full decode) — turned upright by its EXIF orientation, flattened
onto white, scaled down to ``max_side``, converted to sRGB through its ICC profile (CMYK, Adobe RGB,
Display P3 …), and encoded without EXIF (no GPS position leaves the archive) or profile. HEIC and
HEIF open through ``pillow-heif``, whose wheel ships libheif.

With the ``vips`` extra installed (``pyvips``, whose ``pyvips-binary`` wheel ships libvips), an RGB
or grey JPEG is decoded and scaled by libvips instead — shrink-on-load at the same scale as the draft,
then its linear resize: the same pixels to within rounding, 13–16 % less CPU alone, a sync 9 % sooner
(docs/performance.md, "Transform: which decoder"). Everything after, and every other file, is Pillow's
as above, and so is any JPEG libvips cannot read cleanly. Without the extra, Pillow does it all.
"""

from __future__ import annotations

import functools
import io
import math
from typing import Any

import pillow_heif
from PIL import Image, ImageCms, ImageOps

from pipeline.config import TransformConfig
from pipeline.errors import Skipped
from pipeline.sources import NOT_AN_IMAGE, TOO_LARGE, TRUNCATED

pillow_heif.register_heif_opener()

#: A fit never makes the longest side shorter than this: a face needs pixels.
MIN_SIDE = 320
#: Qualities a fit tries (those below the configured one) before it makes the image smaller.
FIT_QUALITIES = (75, 65, 55)
#: How much smaller (at most, and at least) each fitting step makes the side.
_STEP_MIN, _STEP_MAX = 0.5, 0.9
_ORIENTATION = 0x0112
_PLAIN = frozenset({"RGB", "L"})
_ALPHA = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SRGB = ImageCms.createProfile("sRGB")
_ENCODERS = {"jpeg": "JPEG"}


def prepare(data: bytes, kind: str, settings: TransformConfig, limit: int) -> bytes:
    """What to send for the file ``data`` (of format ``kind``): ``data`` itself (the very object) when it
    needs no change, else the picture re-encoded as ``settings`` say; either way at most ``limit`` bytes.

    Raises Skipped: ``not_an_image`` or ``truncated`` when a file to be converted cannot be decoded,
    ``too_large`` when it cannot be made to fit ``limit`` (lower qualities first, then smaller sides
    down to :data:`MIN_SIDE`). A file whose header Pillow cannot read and which need not be converted
    is sent as it is, for the service to judge, as without a transform.
    """
    try:
        img = Image.open(io.BytesIO(data))
        needs = needs_change(img, kind, settings)
    except Exception as exc:  # Pillow raises many kinds for a bad header; every one means "cannot read"
        if kind not in settings.convert and len(data) <= limit:
            return data
        raise _refusal(exc) from None
    if not needs and len(data) <= limit:
        img.close()
        return data
    with img:
        try:
            picture = decode(img, settings.max_side, data)
        except Exception as exc:
            raise _refusal(exc) from None
    encoded = fit(picture, limit, settings)
    if encoded is None:
        raise Skipped(TOO_LARGE, f"cannot be made smaller than {limit} bytes (at {MIN_SIDE} px)")
    return encoded


def needs_change(img: Image.Image, kind: str, settings: TransformConfig) -> bool:
    """Whether the opened (not decoded) image must be re-encoded to be what the service needs."""
    if kind in settings.convert or max(img.size) > settings.max_side:
        return True
    if img.mode not in _PLAIN or "transparency" in img.info:
        return True
    if img.getexif().get(_ORIENTATION, 1) not in (0, 1):
        return True
    icc = img.info.get("icc_profile")
    return bool(icc) and not is_srgb(icc)


def decode(img: Image.Image, max_side: int, data: bytes | None = None) -> Image.Image:
    """The opened image decoded (a JPEG at the smallest scale that keeps ``max_side``), upright, no
    larger than ``max_side``, in sRGB, without alpha: mode RGB, or L for a grey picture. ``data``, the
    file's bytes, lets libvips do a JPEG's decode and scaling when it is installed."""
    width, height = img.size
    icc = img.info.get("icc_profile")
    scaled = _vips_scaled(img, data, max_side) if data is not None else None
    if scaled is not None:
        scaled.info["exif"] = img.info.get("exif", b"")  # its orientation, for the turn below
        img = scaled
    elif img.format == "JPEG" and max(width, height) > max_side:
        scale = max_side / max(width, height)
        img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    ImageOps.exif_transpose(img, in_place=True)
    picture = _plain_mode(img)
    if max(picture.size) > max_side:
        picture = _scaled(picture, max_side / max(picture.size))
    if picture.mode in _ALPHA:
        picture = _flattened(picture)
    if icc and not is_srgb(icc):
        picture = _to_srgb(picture, icc)
    if picture.mode not in _PLAIN:
        picture = picture.convert("RGB")
    return picture


def fit(picture: Image.Image, limit: int, settings: TransformConfig) -> bytes | None:
    """``picture`` encoded in at most ``limit`` bytes: at the configured quality, then at lower ones,
    then at smaller sides; None when even :data:`MIN_SIDE` pixels do not fit."""
    qualities = [settings.quality, *(q for q in FIT_QUALITIES if q < settings.quality)]
    for quality in qualities:
        encoded = encode(picture, settings.format, quality)
        if len(encoded) <= limit:
            return encoded
    while True:
        # The bytes go roughly with the pixels: aim at the limit in one step, a little under it.
        step = min(_STEP_MAX, max(_STEP_MIN, 0.95 * math.sqrt(limit / len(encoded))))
        if max(picture.size) * step < MIN_SIDE:
            return None
        picture = _scaled(picture, step)
        encoded = encode(picture, settings.format, qualities[-1])
        if len(encoded) <= limit:
            return encoded


def encode(picture: Image.Image, fmt: str, quality: int) -> bytes:
    """``picture`` in ``fmt`` at ``quality``, with no EXIF and no profile (sRGB is the default)."""
    out = io.BytesIO()
    picture.save(out, _ENCODERS[fmt], quality=quality)
    return out.getvalue()


@functools.lru_cache(maxsize=64)
def is_srgb(icc: bytes) -> bool:
    """Whether an ICC profile is sRGB (by its description); one that cannot be read counts as sRGB."""
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return True
    return "srgb" in description.lower()


def _plain_mode(picture: Image.Image) -> Image.Image:
    """A mode that scales well: palettes and 1-bit to RGB(A) or L, 16-bit and float grey to 8-bit L."""
    mode = picture.mode
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in picture.info
        return picture.convert("RGBA" if transparent else "RGB")
    if mode == "1":
        return picture.convert("L")
    if mode.startswith("I;16") or mode == "I":
        return picture.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode == "F":
        return picture.convert("L")
    if mode in _PLAIN and "transparency" in picture.info:
        return picture.convert("RGBA" if mode == "RGB" else "LA")
    return picture


def _scaled(picture: Image.Image, factor: float) -> Image.Image:
    """Bilinear: Pillow widens it with the factor (it antialiases), and after a JPEG's draft the factor
    is under 2, where bicubic cost 1.7 times as much here for no difference a face search sees."""
    return picture.resize(_scaled_size(picture.size, factor), Image.Resampling.BILINEAR)


def _scaled_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


@functools.cache
def _vips() -> Any:
    """pyvips (the ``vips`` extra), set for the engine's pool — one libvips thread per image, no cache
    of operations between images — or None when it is not installed or its libvips cannot load."""
    try:
        import pyvips  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except (ImportError, OSError):
        return None
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)
    return pyvips


def _vips_scaled(img: Image.Image, data: bytes, max_side: int) -> Image.Image | None:
    """An RGB or grey JPEG over ``max_side``, decoded by libvips at the draft's scale (shrink-on-load)
    and resized to the size :func:`_scaled` gives, not yet turned upright; None when pyvips is absent,
    the file is any other, or libvips meets anything amiss in it (Pillow then decodes it, and judges)."""
    width, height = img.size
    if img.format != "JPEG" or img.mode not in _PLAIN or max(width, height) <= max_side:
        return None
    pyvips = _vips()
    if pyvips is None:
        return None
    scale = max_side / max(width, height)
    target = _scaled_size(img.size, scale)
    fits = min(width // math.ceil(width * scale), height // math.ceil(height * scale))  # as draft() picks
    shrink = next(s for s in (8, 4, 2, 1) if s <= fits or s == 1)
    try:
        loaded = pyvips.Image.new_from_buffer(
            data, "", shrink=shrink, access="sequential", fail_on="warning", autorotate=False
        )
        resized = loaded.resize(target[0] / loaded.width, vscale=target[1] / loaded.height, kernel="linear")
        if (resized.width, resized.height) != target or resized.bands != len(img.mode):
            return None
        return Image.frombytes(img.mode, target, resized.write_to_memory())
    except pyvips.Error:
        return None


def _flattened(picture: Image.Image) -> Image.Image:
    """Alpha composited onto white: the service sees what a viewer shows."""
    rgba = picture.convert("RGBA")
    white = Image.new("RGB", rgba.size, (255, 255, 255))
    white.paste(rgba, mask=rgba.getchannel("A"))
    return white


def _to_srgb(picture: Image.Image, icc: bytes) -> Image.Image:
    """``picture`` from its ICC profile to sRGB; converted plainly when the profile cannot be used."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(picture, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return picture.convert("RGB")
    return converted if converted is not None else picture.convert("RGB")


def _refusal(exc: Exception) -> Skipped:
    """A decoding error as the local refusal it is."""
    if isinstance(exc, Image.DecompressionBombError):
        return Skipped(TOO_LARGE, "too many pixels to decode safely")
    if "truncated" in str(exc).lower():
        return Skipped(TRUNCATED, "the image data is cut short")
    return Skipped(NOT_AN_IMAGE, f"cannot be decoded ({type(exc).__name__})")
