"""Pure helpers for image bytes: what format they are (by magic bytes) and their content hash.

Called once per upload by the engine for every source, so both stay allocation-light: ``sniff`` looks at
a few header bytes and never decodes the image.
"""

from __future__ import annotations

import hashlib

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
