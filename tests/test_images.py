"""Magic-byte sniffing and hashing, on images Pillow really writes."""

from __future__ import annotations

import hashlib
import io
import struct

import pytest
from PIL import Image

from pipeline.engine.images import sha256_hex, sniff


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
