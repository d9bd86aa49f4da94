"""Thumbnails for the HTML pages: small JPEGs as ``data:`` URIs, made without decoding a whole photo.

Pillow's draft mode asks the JPEG decoder for a scaled-down picture (1/2, 1/4 or 1/8 of each side),
so a camera photo costs about half a full decode (the entropy decoding of the whole file remains:
docs/reports.md); other formats are decoded whole, then reduced. A file that cannot become a
picture — not an image, cut short, 0×0, a FIFO, a symlink the source would not follow, too many
pixels, no local copy — gets a placeholder (a small PNG) and the reason, never a broken ``<img>``.
Files are read with the source's caution: never through a symlink unless ``source.follow_symlinks``,
never a FIFO (which would block), nothing over :data:`MAX_PREVIEW_BYTES`.
"""

from __future__ import annotations

import base64
import errno
import io
import os
import stat
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageDraw, ImageOps

#: The longest side of a thumbnail in a grid, and of the pictures of the search page (both ≤ 256 px).
GRID_PX = 192
LARGE_PX = 256
JPEG_QUALITY = 75
#: Bigger files are not decoded for a preview (a photo is rarely over 50 MB; a video named .jpg may be).
MAX_PREVIEW_BYTES = 64 * 1024 * 1024
#: Thumbnails are made on this many threads: Pillow releases the GIL while it decodes and resizes.
WORKERS = min(8, os.cpu_count() or 1)

NO_LOCAL_FILE = "no local copy"


@dataclass(frozen=True, slots=True)
class Thumb:
    """A picture for an ``<img>``: its ``data:`` URI and size; ``problem`` says why it is a placeholder."""

    uri: str
    width: int
    height: int
    problem: str | None = None


def thumbnails(
    paths: Sequence[Path | None], box: int = GRID_PX, *, follow_symlinks: bool = False
) -> list[Thumb]:
    """A thumbnail (or a placeholder) for each path, in order; ``None`` stands for "no local copy".

    Pillow's decompression-bomb warning becomes an error for the duration, so a picture with more
    pixels than ``Image.MAX_IMAGE_PIXELS`` gets a placeholder instead of a warning on stderr (the
    filter is process-wide, which is why the pool lives inside this one call).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if len(paths) <= 1:
            return [thumbnail(p, box, follow_symlinks=follow_symlinks) for p in paths]
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="thumbs") as pool:
            return list(pool.map(lambda p: thumbnail(p, box, follow_symlinks=follow_symlinks), paths))


def thumbnail(path: Path | None, box: int = GRID_PX, *, follow_symlinks: bool = False) -> Thumb:
    """One file's thumbnail, or a placeholder naming why there is none. Prefer :func:`thumbnails`."""
    if path is None:
        return placeholder(NO_LOCAL_FILE, box)
    opened = _open(path, follow_symlinks)
    if isinstance(opened, str):
        return placeholder(opened, box)
    with opened:
        return _picture(opened, box)


def thumbnail_data(data: bytes, box: int = GRID_PX) -> Thumb:
    """The thumbnail of bytes already read (a zip member), or a placeholder naming why there is none;
    called inside :func:`thumbnails`' warning filter or alone (then a bomb is only Pillow's error)."""
    if not data:
        return placeholder("an empty file", box)
    if len(data) > MAX_PREVIEW_BYTES:
        return placeholder("too large to preview", box)
    return _picture(io.BytesIO(data), box)


def _picture(file: BinaryIO, box: int) -> Thumb:
    try:
        return _encode(_render(file, box))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return placeholder("too many pixels to preview", box)
    except Exception:  # Pillow raises a dozen kinds for a broken or unreadable file: "no picture"
        return placeholder("cannot be decoded", box)


def placeholder(problem: str, box: int = GRID_PX) -> Thumb:
    """The stand-in picture (a framed, crossed-out landscape), with ``problem`` as its reason."""
    uri, width, height = _placeholder_png(box)
    return Thumb(uri, width, height, problem)


def _open(path: Path, follow_symlinks: bool) -> BinaryIO | str:
    """The file, open for reading (Pillow reads it as it decodes: no whole copy in memory), or why it
    is not opened: a short phrase for the page."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink (not followed)"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "the file is gone"
        return f"unreadable: {exc.strerror or exc}"
    try:
        info = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        return f"unreadable: {exc.strerror or exc}"
    problem = _refused(info)
    if problem is not None:
        os.close(fd)
        return problem
    return os.fdopen(fd, "rb")


def _refused(info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size == 0:
        return "an empty file"
    if info.st_size > MAX_PREVIEW_BYTES:
        return "too large to preview"
    return None


def _render(file: BinaryIO, box: int) -> Image.Image:
    """Decode just enough of ``file`` for a ``box``-pixel picture, upright (EXIF), in RGB."""
    with Image.open(file) as im:
        im.draft("RGB", (box, box))  # JPEG: the decoder scales down by 1/2, 1/4 or 1/8 as it decodes
        im.thumbnail((box, box))
        upright = ImageOps.exif_transpose(im)
        if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
            flat = Image.new("RGB", upright.size, "white")
            rgba = upright.convert("RGBA")
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return upright.convert("RGB")


def _encode(picture: Image.Image) -> Thumb:
    buf = io.BytesIO()
    picture.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    width, height = picture.size
    return Thumb(_data_uri("image/jpeg", buf.getvalue()), width, height)


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


@cache
def _placeholder_png(box: int) -> tuple[str, int, int]:
    """A 4:3 grey card with a crossed-out landscape: the same few hundred bytes for every use."""
    width, height = box, box * 3 // 4
    img = Image.new("RGB", (width, height), (236, 239, 241))
    draw = ImageDraw.Draw(img)
    ink = (144, 164, 174)
    cx, cy, s = width // 2, height // 2, max(8, box // 6)
    frame = (cx - s, cy - s * 3 // 4, cx + s, cy + s * 3 // 4)
    draw.rectangle(frame, outline=ink, width=max(1, box // 64))
    draw.polygon([(frame[0], frame[3]), (cx - s // 3, cy), (cx + s // 5, frame[3])], fill=ink)
    draw.ellipse((cx + s // 3, cy - s // 2, cx + s // 3 + s // 3, cy - s // 2 + s // 3), fill=ink)
    draw.line((frame[0], frame[1], frame[2], frame[3]), fill=(198, 40, 40), width=max(1, box // 48))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return _data_uri("image/png", buf.getvalue()), width, height
