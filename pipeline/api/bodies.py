"""The request bodies of the five calls, built as bytes (pure).

An add's body is assembled around the base64 bytes instead of going through ``json.dumps``, which
would re-scan a multi-megabyte string at a sixth of pybase64's speed. Reserved metadata keys and
malformed ids are refused here, before any request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.config import RESERVED_METADATA_KEYS
from pipeline.keys import ImageId


def add_body(image_b64: bytes, metadata: Mapping[str, Any] | None) -> bytes:
    """``{"image": {"base64": ...}}`` around base64 bytes given by a caller (checked to be base64-safe)."""
    if not isinstance(image_b64, bytes | bytearray):
        raise TypeError(f"add() takes base64 bytes, got {type(image_b64).__name__}")
    if b'"' in image_b64 or b"\\" in image_b64:
        raise ValueError("add() takes base64 bytes; these contain characters base64 never has")
    return encoded_add_body(bytes(image_b64), metadata)


def encoded_add_body(image_b64: bytes, metadata: Mapping[str, Any] | None) -> bytes:
    """:func:`add_body` for base64 this process has just encoded (pybase64's output), which is not
    scanned again: the two scans were ~10 µs of a 100 KB image's ~750 µs."""
    return b"".join(add_parts(image_b64, metadata))


def add_parts(image_b64: bytes, metadata: Mapping[str, Any] | None) -> tuple[bytes, ...]:
    """:func:`encoded_add_body` in the pieces it is made of, not joined: the connection joins them once,
    behind the request's headers (``api/http.py``), so the image is copied once, not twice."""
    if metadata is None:
        return (b'{"image":{"base64":"', image_b64, b'"}}')
    return (b'{"image":{"base64":"', image_b64, b'","metadata":', metadata_json(metadata), b"}}")


def search_body(image_b64: bytes) -> bytes:
    """``{"image": {"base64": ...}}``."""
    return b"".join((b'{"image":{"base64":"', image_b64, b'"}}'))


def update_body(image_id: ImageId, metadata: Mapping[str, Any]) -> bytes:
    """``{"image_id": ..., "metadata": ...}`` (the id sent back exactly as the service gave it)."""
    check_id(image_id)
    return b'{"image_id":' + json.dumps(image_id).encode() + b',"metadata":' + metadata_json(metadata) + b"}"


def delete_body(ids: Sequence[ImageId]) -> bytes:
    """``{"ids": [...]}``."""
    for image_id in ids:
        check_id(image_id)
    return json.dumps({"ids": list(ids)}).encode()


def metadata_json(metadata: Mapping[str, Any]) -> bytes:
    """Metadata as compact JSON; keys the service reserves are refused (a programming error)."""
    reserved = sorted(RESERVED_METADATA_KEYS.intersection(metadata))
    if reserved:
        raise ValueError(f"metadata keys {', '.join(reserved)} are reserved by the service")
    return _COMPACT.encode(metadata if type(metadata) is dict else dict(metadata)).encode()


#: One encoder for every body (``json.dumps`` with options builds a new one a call).
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def check_id(image_id: object) -> None:
    """Ids are int or str, as the service gave them; anything else is a programming error."""
    if isinstance(image_id, bool) or not isinstance(image_id, int | str):
        raise TypeError(f"image ids are int or str, got {image_id!r}")
