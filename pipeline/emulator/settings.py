"""The emulator's knobs: one mutable dataclass, validated on every change.

Tests and benches turn these at run time (from Python or over ``POST /_emulator/settings``) to make
the service misbehave on purpose, so every change goes through :func:`apply_changes`, which checks
names, types and ranges and leaves the settings untouched when anything is wrong.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from pipeline.emulator.protocol import show

IdKind = Literal["int", "str"]
IdField = Literal["id", "_id", "image_id"]
DeleteUnknown = Literal["ignore", "fail"]
ListOrder = Literal["oldest_first", "newest_first"]

DEFAULT_API_KEY = "demo-key"
DEFAULT_API_SECRET = "demo-secret"
DEFAULT_PAGE_CAP = 1000
DEFAULT_DELETE_CAP = 1000
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_SEARCH_THRESHOLD = 10
DEFAULT_STALL_SECONDS = 3600.0


@dataclass
class EmulatorSettings:
    """Everything about the emulator's behaviour that a test or a bench may want to change."""

    api_key: str = DEFAULT_API_KEY
    api_secret: str = DEFAULT_API_SECRET
    #: Requests per second admitted over a sliding window (1 s, or 1/rate when rate < 1); excess → code 4.
    rate_limit: float | None = None
    #: Total API requests admitted from the moment this is set; every one after → code 4.
    quota: int | None = None
    #: HTTP status of code-4 answers: 429 or 200.
    throttle_http_status: int = 429
    #: Seconds sent as ``Retry-After`` with code-4 answers; None sends no header.
    retry_after: float | None = None
    #: Share of API calls answered code 4 at random (``throttle_http_status``, ``Retry-After``): a storm.
    throttle_share: float = 0.0
    #: Largest page ``GET /images`` returns, whatever ``limit`` asks.
    page_cap: int = DEFAULT_PAGE_CAP
    #: Most ids one ``DELETE /images`` accepts; more → HTTP 400, code 6, nothing deleted.
    delete_cap: int = DEFAULT_DELETE_CAP
    #: Unknown ids in a delete: ignored, or the whole call fails (HTTP 404, code 6, nothing deleted).
    delete_unknown: DeleteUnknown = "ignore"
    #: "int": sequential integers from ``id_start``; "str": 24-hex ObjectId-like strings.
    id_kind: IdKind = "int"
    #: First integer id; None picks a random large start (once per data dir).
    id_start: int | None = 1
    #: Name of the id field in the add answer.
    add_id_field: IdField = "id"
    #: Whether ``GET /images`` items carry ``metadata``.
    list_metadata: bool = True
    #: The listing's order: insertion order (oldest first) or its reverse (newest first).
    list_order: ListOrder = "oldest_first"
    #: An add of bytes already stored (same sha256) stores nothing and answers the stored image.
    dedup: bool = False
    #: Adds skip Pillow and the file: only the bytes' sha256, size and metadata are kept (the image has no
    #: content to download and search never finds it), and no fault knob applies to them: a bench's
    #: million tiny images cost the client's work, not the emulator's.
    fast_adds: bool = False
    #: Largest request body; over it → HTTP 413, code 6.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Request bodies are read at most this fast, in Mbit/s, all connections together (one uplink: a
    #: home or office line); None: as fast as they arrive.
    bandwidth_mbit: float | None = None
    #: HTTP status of code-5 (bad credentials) answers: 401, 403 or 200.
    auth_http_status: int = 401
    #: HTTP status of refusals otherwise answered 400 (codes 1, 3, 6): 400 or 200.
    refusal_http_status: int = 400
    #: Hamming distance (of 64) at most which a search counts a stored image as a match.
    search_threshold: int = DEFAULT_SEARCH_THRESHOLD
    #: Share of API calls answered ``fail_status`` before anything is done.
    fail_before: float = 0.0
    #: Share of API calls whose connection is closed before anything is done (a reset, no answer).
    reset_before: float = 0.0
    fail_status: int = 503
    #: Whether failure bodies are a proxy's HTML page instead of JSON.
    fail_body_html: bool = False
    #: Listing pages at or past this offset answer ``fail_status`` (a listing that breaks part-way).
    fail_list_from_offset: int | None = None
    #: Every listing page comes back empty (a service that lost, or hides, its images).
    list_empty: bool = False
    #: Before answering a listing page past offset 0, delete this many of the images listed before it
    #: that carry no ``facesync_key`` (another application cleaning up): the offsets shift under the pager.
    list_shift_deletes: int = 0
    #: Share of adds that store the image and then answer ``fail_status``.
    store_then_fail: float = 0.0
    #: Share of adds that store the image and then close the connection without an answer.
    store_then_drop: float = 0.0
    #: Share of API calls that never answer (they wait ``stall_seconds``, then drop the connection).
    stall: float = 0.0
    stall_seconds: float = DEFAULT_STALL_SECONDS
    #: Each API call first waits a uniform random 0..delay seconds.
    delay: float = 0.0
    #: Seed of the RNG behind every random choice above (and string ids); None: unseeded.
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-able data."""
        return dataclasses.asdict(self)

    def copy(self) -> EmulatorSettings:
        return dataclasses.replace(self)


_SHARES = {"fail_before", "reset_before", "store_then_fail", "store_then_drop", "stall", "throttle_share"}
_CHOICES: dict[str, tuple[object, ...]] = {
    "delete_unknown": get_args(DeleteUnknown),
    "id_kind": get_args(IdKind),
    "add_id_field": get_args(IdField),
    "list_order": get_args(ListOrder),
    "throttle_http_status": (200, 429),
    "auth_http_status": (200, 401, 403),
    "refusal_http_status": (200, 400),
}
_STRINGS = {"api_key", "api_secret"}
_BOOLS = {"list_metadata", "fail_body_html", "list_empty", "dedup", "fast_adds"}
_OPTIONAL = {
    "rate_limit",
    "quota",
    "retry_after",
    "id_start",
    "seed",
    "fail_list_from_offset",
    "bandwidth_mbit",
}
_INTS = {
    "fail_list_from_offset",
    "quota",
    "page_cap",
    "delete_cap",
    "id_start",
    "max_body_bytes",
    "search_threshold",
    "seed",
    "list_shift_deletes",
}
_INTS |= {"fail_status", "throttle_http_status", "auth_http_status", "refusal_http_status"}
_POSITIVE = {"rate_limit", "quota", "page_cap", "delete_cap", "max_body_bytes", "bandwidth_mbit"}


def _check(name: str, value: object) -> object:
    """Return ``value`` normalised for field ``name``, or raise ValueError saying what is wrong."""
    if value is None:
        if name in _OPTIONAL:
            return None
        raise ValueError(f"{name}: may not be null")
    if name in _STRINGS:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {show(value)}")
        return value
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {show(value)}")
        return value
    if name in _CHOICES:
        if value not in _CHOICES[name] or isinstance(value, bool):
            choices = ", ".join(map(show, _CHOICES[name]))
            raise ValueError(f"{name}: expected one of {choices}, got {show(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected a number, got {show(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {show(value)}")
    if name in _INTS:
        if value != int(value):
            raise ValueError(f"{name}: expected a whole number, got {show(value)}")
        value = int(value)
    else:
        value = float(value)
    if name in _SHARES and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a share between 0 and 1, got {show(value)}")
    if name in _POSITIVE and value <= 0:
        raise ValueError(f"{name}: expected a number > 0, got {show(value)}")
    if name == "fail_status" and not 100 <= value <= 599:
        raise ValueError(f"{name}: expected an HTTP status, got {show(value)}")
    if name == "search_threshold" and not 0 <= value <= 64:
        raise ValueError(f"{name}: expected 0..64, got {show(value)}")
    if value < 0 and name != "seed":
        raise ValueError(f"{name}: expected a number >= 0, got {show(value)}")
    return value


def validate_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Check a set of changes against the fields; return them normalised. Raises ValueError."""
    known = {f.name for f in fields(EmulatorSettings)}
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in known:
            raise ValueError(f"unknown setting {show(name)} (known: {', '.join(sorted(known))})")
        checked[name] = _check(name, value)
    return checked


def apply_changes(settings: EmulatorSettings, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate all of ``changes`` first, then apply them to ``settings`` in place; return them."""
    checked = validate_changes(changes)
    for name, value in checked.items():
        setattr(settings, name, value)
    return checked
