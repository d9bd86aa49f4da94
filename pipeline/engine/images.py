"""Pure helpers for image bytes: what format they are, whether they are whole, and their content hash.

Called once per upload by the engine for every source, so they stay allocation-light: ``sniff`` looks at
a few header bytes, ``check_complete`` at the structure (markers, chunk names, sizes) — neither decodes
the image.
"""

from __future__ import annotations

import hashlib

from pipeline.errors import Skipped
from pipeline.sources import TRUNCATED

_PNG = b"\x89PNG\r\n\x1a\n"
#: BITMAPINFOHEADER sizes seen in the wild (core, v1, v2, v3, OS/2 v2, v4, v5).
_BMP_DIB_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def sniff(data: bytes) -> str | None:
    """The image format of ``data`` by its magic bytes, or None when it is not an image we know.

    One of ``jpeg``, ``png``, ``gif``, ``webp``, ``bmp``, ``tiff``, ``heic``, ``heif``, ``avif``.
    """
    head = data[:32]
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == _PNG:
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return "bmp"
    if head[4:8] == b"ftyp":
        return _ftyp(data)
    return None


def _ftyp(data: bytes) -> str | None:
    """heic / heif / avif from an ISO-BMFF ``ftyp`` box: the major brand, else the compatible brands."""
    size = int.from_bytes(data[0:4], "big")
    end = min(max(size, 16), len(data), 4096)
    major = data[8:12]
    brands = [major] + [data[i : i + 4] for i in range(16, end - 3, 4)]
    found = None
    for brand in brands:
        if brand in _AVIF_BRANDS:
            return "avif"
        if brand in _HEIC_BRANDS:
            return "heic"
        if brand in _HEIF_BRANDS and found is None:
            found = "heif"
    return found


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as lowercase hex: the content identity that turns a replace into a retouch."""
    return hashlib.sha256(data).hexdigest()


def check_complete(kind: str, data: bytes) -> None:
    """Refuse (Skipped ``truncated``) an image cut short — a copy interrupted, a download that broke.

    A cheap structural check, no decode: a JPEG has an end-of-image marker after its first scan
    (anything after it, such as a motion photo's video, is allowed), a PNG its ``IEND`` chunk, a GIF
    its trailer, a WebP as many bytes as its RIFF header announces. Other formats, and JPEGs whose
    headers this walk does not understand, are left for the service to judge. Sending a cut image
    only spends a request on a refusal.
    """
    missing = None
    if kind == "jpeg":
        scan = _jpeg_first_scan(data)
        # Searched from the end, where a whole JPEG has it: the same answer as a search from the scan,
        # in 0.1 µs instead of ~90 (a walk through 100 KB of entropy-coded data, a tenth of an upload's CPU).
        if scan is not None and data.rfind(b"\xff\xd9", scan) < 0:
            missing = "the JPEG has no end-of-image marker"
    elif kind == "png":
        if data.rfind(b"IEND\xaeB`\x82") < 0:
            missing = "the PNG has no IEND chunk"
    elif kind == "gif":
        if not data.rstrip(b"\x00").endswith(b";"):
            missing = "the GIF has no trailer"
    elif kind == "webp":
        announced = int.from_bytes(data[4:8], "little") + 8
        if len(data) < announced:
            missing = f"the WebP announces {announced} bytes and has {len(data)}"
    if missing is not None:
        raise Skipped(TRUNCATED, f"{missing}: the file is cut short")


#: JPEG markers that stand alone (no length field): TEM and RST0-7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_first_scan(data: bytes) -> int | None:
    """Where the first scan's data starts (after the SOS header), ``len(data)`` when the headers are
    cut short, or None when the segments are not as expected (then nothing is judged)."""
    pos, end = 2, len(data)
    while pos < end:
        if data[pos] != 0xFF:
            return None
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            return end
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9):  # a second start, or an end before any scan: not understood here
            return None
        if pos + 2 > end:
            return end
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            return None
        pos += length
        if marker == 0xDA:  # start of scan: entropy-coded data follows its header
            return min(pos, end)
    return end
