"""The probe's images: a face photo made unique, so no service can mistake it for an image it holds.

The real service stores only photos with a face (code 3 otherwise), so the probe adds one the user
gives (``--image``) or one taken from the archive. Either may already be in the collection — and a
service that keeps one image per content would then answer the *stored* image's id, which the probe
would go on to delete. So the bytes are made unique first: a comment naming the probe run is written
into the file (a JPEG COM segment, a PNG tEXt chunk), leaving the picture as it was. The embedded
emulator has no face model, so for it a little picture is drawn when there is nothing to take.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

from pipeline.engine.images import sniff

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Formats whose bytes :func:`unique` can mark without decoding them.
MARKABLE = frozenset({"jpeg", "png"})


def unique(data: bytes, label: str) -> bytes:
    """``data`` (a JPEG or PNG) with ``label`` written in as a comment: other bytes, the same picture.

    Raises ValueError for any other format (re-encoding it would need a decoder for it).
    """
    text = f"facesync probe {label}".encode("ascii", "replace")
    kind = sniff(data)
    if kind == "jpeg":
        segment = b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text
        return data[:2] + segment + data[2:]
    if kind == "png" and data[12:16] == b"IHDR":
        end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4  # the IHDR chunk: length, type, data, CRC
        body = b"Comment\x00" + text
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
        return data[:end] + chunk + data[end:]
    raise ValueError(f"the probe marks JPEG and PNG images only, not {kind or 'these bytes'}")


def drawn(seed: int) -> bytes:
    """A small picture (JPEG) for the embedded emulator, which has no face model: shapes on a gradient."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    img = Image.new("RGB", (160, 120), colour())
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x0, y0 = rng.randrange(160), rng.randrange(120)
        box = (x0, y0, x0 + rng.randrange(10, 80), y0 + rng.randrange(10, 60))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour())
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()
