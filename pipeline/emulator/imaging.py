"""What the emulator learns from an image's bytes: Pillow opens them, a 64-bit dHash sums them up.

Pillow is used here only (and for the files' MIME type). Its errors are turned into words: its own
messages can carry a repr of the buffer (``cannot identify image file <_io.BytesIO object at 0x…>``),
which is no answer to send a client.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

#: Formats the service refuses (status_code 3: HEIC, HEIF) even when this process's Pillow reads them.
NOT_TAKEN = frozenset({"HEIF"})


class DecodeError(Exception):
    """Pillow could not make a usable picture of the bytes (status_code 3)."""


@dataclass(frozen=True)
class Decoded:
    """What an add learns from the bytes before it stores them."""

    sha256: str
    size: int
    dhash: int
    fmt: str


def decode(data: bytes) -> Decoded:
    """Open the bytes with Pillow and take their 64-bit dHash; raise DecodeError when unusable.

    Meant for a worker thread: decoding is most of an add's cost, and Pillow releases the GIL.
    The DecodeError says in words what is wrong with the image.
    """
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise DecodeError("the image has too many pixels to decode") from None
    except UnidentifiedImageError:
        raise DecodeError("the bytes are not an image in any known format") from None
    except Exception as exc:
        if _says_truncated(exc):
            raise DecodeError("the image data is truncated") from None
        raise DecodeError("the image header is damaged or of an unsupported kind") from None
    with img:
        fmt = img.format or "UNKNOWN"
        if (
            fmt in NOT_TAKEN
        ):  # Pillow may read them (pillow-heif registered in this process); the service does not
            raise DecodeError(f"{fmt} images are not accepted (send JPEG or PNG)")
        if img.width <= 0 or img.height <= 0:
            raise DecodeError("the image has no pixels")
        try:
            img.draft("L", (64, 64))
            dhash = dhash_of(img)
        except Image.DecompressionBombError:
            raise DecodeError("the image has too many pixels to decode") from None
        except Exception as exc:
            raise DecodeError(
                f"the {fmt} data is {'truncated' if _says_truncated(exc) else 'damaged'}"
            ) from None
    return Decoded(hashlib.sha256(data).hexdigest(), len(data), dhash, fmt)


def _says_truncated(exc: Exception) -> bool:
    """Whether Pillow's error means the data ends early ("image file is truncated", "Truncated File Read")."""
    return "truncated" in str(exc).lower()


def dhash_of(img: Image.Image) -> int:
    """The 64-bit difference hash: is each pixel of a 9x8 greyscale thumbnail brighter than its right?"""
    small = img.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    px = small.tobytes()
    bits = 0
    for row in range(8):
        base = row * 9
        for col in range(8):
            bits = (bits << 1) | (px[base + col] > px[base + col + 1])
    return bits
