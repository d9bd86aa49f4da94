"""The wire side of the emulator: answers, the request log record, and parsing of request bodies.

Kept apart from the server so the mapping from a bad request to a status code reads in one place
(it is the contract the client's error translation is tested against).
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass, field
from typing import Any

import pybase64
from aiohttp import web

SUCCESS = 0
NO_CONTENT = 1
URL_UNAVAILABLE = 2
BAD_IMAGE = 3
OUT_OF_REQUESTS = 4
BAD_CREDENTIALS = 5
BAD_FORMAT = 6

MESSAGES = {
    SUCCESS: "Success",
    NO_CONTENT: "The photo does not contain content",
    URL_UNAVAILABLE: "Url is unavailable",
    BAD_IMAGE: "Incorrect image format",
    OUT_OF_REQUESTS: "Out of requests",
    BAD_CREDENTIALS: "Incorrect api_key or api_secret",
    BAD_FORMAT: "Incorrect format type",
}

RESERVED_METADATA_KEYS = frozenset({"user", "encoding", "_id"})

#: Longest rendering of a refused value in a message; longer ones are cut with "…".
SHOW_MAX_CHARS = 80

PROXY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the emulator saw it; ``http_status`` is None when no answer was sent."""

    time: float
    method: str
    path: str
    http_status: int | None
    status_code: int | None
    outcome: str
    query: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "http_status": self.http_status,
            "status_code": self.status_code,
            "outcome": self.outcome,
        }


@dataclass
class Answer:
    """What an API call answers, before it becomes an HTTP response."""

    http_status: int
    status_code: int
    result: Any = None
    detail: str = ""
    outcome: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        base = MESSAGES.get(self.status_code, "Error")
        return f"{base}: {self.detail}" if self.detail else base

    def response(self) -> web.Response:
        body = {"result": self.result, "status_code": self.status_code, "message": self.message}
        return json_response(body, self.http_status, self.headers)


def ok(result: Any = None) -> Answer:
    return Answer(200, SUCCESS, result)


class Refusal(Exception):
    """A request the emulator refuses: carries the answer to send (raised from deep in a handler)."""

    def __init__(self, status_code: int, detail: str = "", http_status: int = 400) -> None:
        super().__init__(detail)
        self.answer = Answer(http_status, status_code, None, detail, outcome="rejected")


def show(value: Any) -> str:
    """A value as a message quotes it: as JSON (what the client sent), never a Python repr.

    A value JSON cannot express (set from Python) is named by its type; a long one is cut.
    """
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return f"a value of type {type(value).__name__}"
    return text if len(text) <= SHOW_MAX_CHARS else text[: SHOW_MAX_CHARS - 1] + "…"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers=headers, content_type="application/json"
    )


def failure_response(status: int, html: bool) -> web.Response:
    """The answer of an injected failure: a proxy's HTML page, or JSON with a null status_code."""
    reason = web.Response(status=status).reason
    if html:
        return web.Response(
            text=PROXY_PAGE.format(status=status, reason=reason), status=status, content_type="text/html"
        )
    return json_response({"result": None, "status_code": None, "message": reason}, status)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (whatever the Content-Type: the vendor's demos send none)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(BAD_FORMAT, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Refusal(BAD_FORMAT, "the body is not a JSON object")
    return data


def parse_metadata(value: Any, *, required: bool) -> dict[str, Any]:
    """A metadata object: a JSON object without reserved keys."""
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise Refusal(BAD_FORMAT, "metadata must be a JSON object")
    reserved = sorted(RESERVED_METADATA_KEYS & value.keys())
    if reserved:
        raise Refusal(BAD_FORMAT, f"metadata keys are reserved: {', '.join(map(show, reserved))}")
    return value


def decode_base64(text: str) -> bytes:
    """Strict base64, but tolerant of line breaks (``base64.encodebytes`` output)."""
    try:
        return bytes(pybase64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        pass
    squeezed = "".join(text.split())
    try:
        return bytes(pybase64.b64decode(squeezed, validate=True))
    except (binascii.Error, ValueError):
        raise Refusal(BAD_FORMAT, "image.base64 is not valid base64") from None


def parse_image(payload: dict[str, Any], call: str) -> tuple[bytes, Any]:
    """The image bytes and raw metadata of an add or search body: code 6, or 1 when empty."""
    image = payload.get("image")
    if not isinstance(image, dict):
        hint = " (to delete, send DELETE; to update metadata, send PUT /images/<id>)" if call == "add" else ""
        raise Refusal(BAD_FORMAT, f"the body has no 'image' object{hint}")
    b64 = image.get("base64")
    if not isinstance(b64, str):
        raise Refusal(BAD_FORMAT, "image.base64 must be a string")
    if not b64.strip():
        raise Refusal(NO_CONTENT, "image.base64 is empty")
    data = decode_base64(b64)
    if not data:
        raise Refusal(NO_CONTENT, "the image has 0 bytes")
    return data, image.get("metadata")


def parse_count(query: Any, name: str, default: int, minimum: int) -> int:
    """A whole-number query parameter (offset, limit): code 6 with HTTP 400 when malformed."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Refusal(BAD_FORMAT, f"{name} must be a whole number, got {show(raw)}") from None
    if value < minimum:
        raise Refusal(BAD_FORMAT, f"{name} must be >= {minimum}, got {value}")
    return value
