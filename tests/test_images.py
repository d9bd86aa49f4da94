"""Magic-byte sniffing and hashing, on images Pillow really writes."""

from __future__ import annotations

import hashlib
import io
import struct

import pytest
from PIL import Image

from pipeline.engine.images import check_complete, sha256_hex, sniff
from pipeline.errors import Skipped


def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format=fmt)
    return buf.getvalue()


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08meta"


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff")],
)
def test_sniff_knows_what_pillow_writes(fmt: str, name: str) -> None:
    assert sniff(encoded(fmt)) == name


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (ftyp(b"heic", b"mif1", b"heic"), "heic"),
        (ftyp(b"mif1", b"mif1", b"heic"), "heic"),
        (ftyp(b"heix", b"mif1"), "heic"),
        (ftyp(b"mif1", b"mif1", b"miaf"), "heif"),
        (ftyp(b"msf1", b"msf1"), "heif"),
        (ftyp(b"avif", b"avif", b"mif1", b"miaf"), "avif"),
        (ftyp(b"mif1", b"avif", b"mif1"), "avif"),
        (ftyp(b"isom", b"isom", b"mp41"), None),
    ],
)
def test_sniff_reads_iso_bmff_brands(data: bytes, name: str | None) -> None:
    assert sniff(data) == name


def test_big_endian_tiff_is_tiff() -> None:
    assert sniff(b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 16) == "tiff"


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xd8", b"hello world", b"BM" + b"\x00" * 30, b"RIFF\x00\x00\x00\x00WAVEfmt ", b"%PDF-1.7\n"],
)
def test_sniff_refuses_what_is_not_an_image(data: bytes) -> None:
    assert sniff(data) is None


def test_sha256_hex_is_the_hex_digest() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# ---- whole or cut short: a structural check, no decode -------------------------------------------------


def _with_exif_thumbnail(jpeg: bytes) -> bytes:
    """``jpeg`` with an APP1 segment holding a small JPEG, as cameras write: an EOI before the scan."""
    thumb = encoded("JPEG")
    payload = b"Exif\x00\x00" + thumb
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def _photo(fmt: str) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (64, 48))
    img.putdata([((x * 7) % 256, (y * 13) % 256, (x * y) % 256) for y in range(48) for x in range(64)])
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_whole_images_pass_the_structural_check(fmt: str) -> None:
    data = _photo(fmt)
    kind = sniff(data)
    assert kind is not None
    check_complete(kind, data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
@pytest.mark.parametrize("keep", [0.2, 0.5, 0.8, 0.95, 0.99])
def test_images_cut_short_are_skipped_as_truncated(fmt: str, keep: float) -> None:
    data = _photo(fmt)
    cut = data[: int(len(data) * keep)]
    with pytest.raises(Skipped) as refused:
        check_complete(sniff(data) or "", cut)
    assert refused.value.reason == "truncated"


@pytest.mark.parametrize("keep", [0.5, 0.8, 0.99])
def test_a_cut_jpeg_is_caught_even_with_an_exif_thumbnail_ending_before_the_scan(keep: float) -> None:
    data = _with_exif_thumbnail(_photo("JPEG"))
    check_complete("jpeg", data)
    with pytest.raises(Skipped):
        check_complete("jpeg", data[: int(len(data) * keep)])


def test_data_after_the_end_of_a_jpeg_is_allowed() -> None:
    """A motion photo appends its video after the JPEG's EOI; the photo itself is whole."""
    check_complete("jpeg", _photo("JPEG") + b"\x00\x00\x00\x18ftypmp42" + bytes(5000))


def test_jpeg_headers_not_understood_are_left_to_the_service() -> None:
    odd = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"not a marker at all" * 10
    check_complete("jpeg", odd)  # no verdict: no marker where one should be
