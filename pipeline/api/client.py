"""The Face Search API client: the only module that talks HTTP and imports aiohttp's errors.

Every answer is read twice over — the JSON ``status_code`` and the HTTP status — and mapped into
:mod:`pipeline.errors` in one place (:func:`_interpret`); every aiohttp exception is translated in
one context manager (:func:`_translated`). Every public call goes through :meth:`FaceSearchClient._call`:
the limiter (tokens, in-flight cap, throttle gate) and the retry policy, so sync, reconcile and search
all behave the same. The table of what maps to what is in ``docs/client.md``.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp
import pybase64
from yarl import URL

from pipeline.api.limiter import Limiter
from pipeline.api.retry import RetryPolicy
from pipeline.config import RESERVED_METADATA_KEYS, ApiConfig, LimitsConfig
from pipeline.errors import AuthError, ConfigError, Fatal, Rejected, Retryable, Throttled
from pipeline.keys import ImageId

__all__ = ["FaceSearchClient", "ImageId", "ProtocolError", "RemoteImage"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Literal["add", "list", "search", "update", "delete"]

#: Status codes that mean "the service refused this input for good".
REJECT_CODES = frozenset({1, 2, 3, 6})
CODE_THROTTLED = 4
CODE_AUTH = 5
#: Calls about one image (or one batch of ids): a 4xx JSON answer refuses that input, not the run.
_PER_ITEM_OPS: frozenset[Op] = frozenset({"add", "search", "update", "delete"})
_ID_FIELDS = ("id", "_id", "image_id")


class ProtocolError(Fatal):
    """The service answered, but not in the documented shape (an add without an id, a list that is no list).

    Fatal, not Retryable: the same request would get the same answer, and for an add a retry could
    store the image a second time. The run stops; reconcile settles whatever was stored.
    """


@dataclass(frozen=True, slots=True)
class RemoteImage:
    """One image as the service describes it; ``id`` is opaque and kept exactly as returned."""

    id: ImageId
    url: str | None = None
    metadata: dict[str, Any] | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    retry_after: str | None


class FaceSearchClient:
    """An async client for the Face Search API (list, search, add, update metadata, delete)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout: float = 60,
        connect_timeout: float = 10,
        page_size: int = 100,
        delete_batch: int = 100,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
    ) -> None:
        if page_size < 1 or delete_batch < 1:
            raise ValueError("page_size and delete_batch must be >= 1")
        self.base_url = base_url.rstrip("/")
        self._base = URL(self.base_url)
        self.api_key = api_key
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode("ascii")
        self._auth = "Basic " + token
        self._secrets = tuple(s for s in (api_secret, token) if s)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self.page_size = page_size
        self.delete_batch_size = delete_batch
        self.limiter = limiter
        self.retry = retry
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        #: HTTP requests sent (a connection refused before sending is not counted).
        self.requests = 0
        #: Throttled answers seen (code 4 or HTTP 429), retried or not.
        self.throttled = 0

    @classmethod
    def from_config(
        cls, api: ApiConfig, limits: LimitsConfig, *, base_url: str | None = None
    ) -> FaceSearchClient:
        """The client a run uses; ``base_url`` overrides ``api.base_url`` (the embedded emulator's URL)."""
        url = base_url if base_url is not None else api.base_url
        if api.embedded and base_url is None:
            raise ConfigError("api.base_url is 'embedded': start the emulator and pass its base_url")
        return cls(
            url,
            api.api_key,
            api.api_secret,
            timeout=api.timeout,
            connect_timeout=api.connect_timeout,
            page_size=api.page_size,
            delete_batch=api.delete_batch,
            limiter=Limiter.from_limits(limits),
            retry=RetryPolicy.from_limits(limits),
            max_connections=max(64, limits.concurrency * 2),
        )

    def __repr__(self) -> str:
        return f"FaceSearchClient({self.base_url!r}, api_key={self.api_key!r}, requests={self.requests})"

    async def __aenter__(self) -> FaceSearchClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (if one was opened); the client can open a new one later."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- the five calls -------------------------------------------------------------------------

    async def add(self, image_b64: bytes, metadata: Mapping[str, Any] | None = None) -> RemoteImage:
        """Store one image given as base64 bytes; return its new id (and url).

        The body is assembled as bytes around the base64 instead of going through ``json.dumps``,
        which would re-scan a multi-megabyte string at a sixth of pybase64's speed.
        """
        _check_b64(image_b64)
        tail = b"}}"
        if metadata is not None:
            tail = b',"metadata":' + _metadata_json(metadata) + b"}}"
        body = b'{"image":{"base64":"' + image_b64 + b'"' + tail
        result = await self._call("add", lambda: self._send("add", "POST", self._base / "images", body))
        if not isinstance(result, Mapping):
            raise ProtocolError(f"add: expected an object describing the new image, got {_brief(result)}")
        return _remote_image(result, "add")

    async def add_image(self, data: bytes, metadata: Mapping[str, Any] | None = None) -> RemoteImage:
        """Encode raw image bytes with pybase64, then :meth:`add`."""
        return await self.add(pybase64.b64encode(data), metadata)

    async def list_page(self, offset: int, limit: int | None = None) -> list[RemoteImage]:
        """One page of the collection: at most ``limit`` images after skipping ``offset``."""
        limit = self.page_size if limit is None else limit
        url = (self._base / "images").with_query(offset=offset, limit=limit)
        result = await self._call("list", lambda: self._send("list", "GET", url, None))
        return _remote_images(result, "list")

    async def iter_images(self, page_size: int | None = None) -> AsyncIterator[RemoteImage]:
        """Every image in the collection, each id once, paging until an empty page.

        The next offset is ``offset + len(page)``, so a server that caps ``limit`` or returns a short
        page that is not the last loses nothing. Ids seen are remembered (memory grows with the
        collection) so a page shifted by a concurrent add does not yield an image twice.
        """
        limit = self.page_size if page_size is None else page_size
        seen: set[ImageId] = set()
        offset = 0
        while True:
            page = await self.list_page(offset, limit)
            if not page:
                return
            offset += len(page)
            for image in page:
                if image.id not in seen:
                    seen.add(image.id)
                    yield image

    async def search(self, data: bytes) -> list[RemoteImage]:
        """The stored images that match the face in ``data`` (raw image bytes)."""
        body = b'{"image":{"base64":"' + pybase64.b64encode(data) + b'"}}'
        result = await self._call("search", lambda: self._send("search", "POST", self._base / "search", body))
        return _remote_images(result, "search")

    async def update_metadata(self, image_id: ImageId, metadata: Mapping[str, Any]) -> None:
        """Replace one image's metadata (``PUT /images/<id>``)."""
        _check_id(image_id)
        meta = _metadata_json(metadata)
        body = b'{"image_id":' + json.dumps(image_id).encode() + b',"metadata":' + meta + b"}"
        url = (self._base / "images").joinpath(quote(str(image_id), safe=""), encoded=True)
        await self._call("update", lambda: self._send("update", "PUT", url, body))

    async def delete(self, ids: Sequence[ImageId]) -> None:
        """Delete images, ``delete_batch`` ids a call, in order; an error stops at the failing batch."""
        for start in range(0, len(ids), self.delete_batch_size):
            await self.delete_batch(ids[start : start + self.delete_batch_size])

    async def delete_batch(self, ids: Sequence[ImageId]) -> None:
        """Delete these ids in exactly one call (none for an empty list)."""
        if not ids:
            return
        for image_id in ids:
            _check_id(image_id)
        body = json.dumps({"ids": list(ids)}).encode()
        await self._call("delete", lambda: self._send("delete", "DELETE", self._base / "images", body))

    # -- the one path every request takes ------------------------------------------------------

    async def _call(self, op: Op, send: Callable[[], Awaitable[T]]) -> T:
        """Send through the limiter (looping on throttles) inside the retry policy (for Retryable)."""
        if self.retry is None:
            return await self._through_limiter(op, send)
        return await self.retry.call(lambda: self._through_limiter(op, send))

    async def _through_limiter(self, op: Op, send: Callable[[], Awaitable[T]]) -> T:
        limiter = self.limiter
        if limiter is None:
            return await send()
        while True:
            async with limiter as permit:
                try:
                    result = await send()
                except Throttled as exc:
                    log.debug("%s throttled (retry_after=%s); gate closes", op, exc.retry_after)
                    limiter.on_throttle(exc.retry_after, permit)
                    continue
                except Rejected:
                    limiter.on_success(permit)
                    raise
                limiter.on_success(permit)
                return result

    async def _send(self, op: Op, method: str, url: URL, body: bytes | None) -> Any:
        """One HTTP request; returns the answer's ``result`` or raises the mapped error."""
        session = self._session_now()
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        with self._translated(op):
            self.requests += 1
            try:
                async with session.request(method, url, data=body, headers=headers) as resp:
                    answer = _Answer(resp.status, await resp.read(), resp.headers.get("Retry-After"))
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
                self.requests -= 1
                raise
        try:
            return _interpret(op, answer)
        except Throttled:
            self.throttled += 1
            raise

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    @contextmanager
    def _translated(self, op: Op) -> Iterator[None]:
        """Turn aiohttp's and the socket's exceptions into pipeline errors; the secret never leaks."""
        try:
            yield
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise Retryable(self._scrub(f"{op}: cannot connect: {exc}"), sent=False) from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise Retryable(self._scrub(f"{op}: timed out: {type(exc).__name__} {exc}"), sent=True) from None
        except aiohttp.InvalidURL as exc:
            raise ConfigError(self._scrub(f"{op}: invalid URL: {exc}")) from None
        except (aiohttp.ClientError, OSError) as exc:
            text = f"{op}: connection failed: {type(exc).__name__} {exc}"
            raise Retryable(self._scrub(text), sent=True) from None

    def _scrub(self, text: str) -> str:
        """Hide the secret (and the header built from it) wherever it appears; a very short secret only
        where it stands alone — "s" inside "list" is not a leak, and hiding it would garble messages."""
        for secret in self._secrets:
            if len(secret) >= 8:
                text = text.replace(secret, "***")
            else:
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
        return text


# -- reading answers (pure) -----------------------------------------------------------------------


def _interpret(op: Op, answer: _Answer) -> Any:
    """Map one HTTP answer to its ``result`` or to the pipeline error that says what happens next."""
    status = answer.status
    payload: Any = None
    is_json = True
    try:
        payload = json.loads(answer.body)
    except ValueError:
        is_json = False
    code = payload.get("status_code") if isinstance(payload, dict) else None
    if isinstance(code, bool) or not isinstance(code, int):
        code = None
    message = payload.get("message") if isinstance(payload, dict) else None
    said = f"{op}: HTTP {status}" + (f", status_code {code}" if code is not None else "")
    said += f": {message}" if isinstance(message, str) and message else ""

    if code == 0:
        return payload.get("result")
    if code == CODE_THROTTLED or (code is None and status == 429):
        raise Throttled(said, retry_after=parse_retry_after(answer.retry_after))
    if code == CODE_AUTH or (code is None and status in (401, 403)):
        raise AuthError(f"{said} (check api.api_key and api.api_secret)")
    if code in REJECT_CODES:
        raise Rejected(said, code=code, http_status=status)
    if status == 413:
        raise Rejected(said, code=code, http_status=413)
    if status >= 500 or status == 408:
        raise Retryable(said if is_json else f"{said}: non-JSON answer {_brief(answer.body)}", sent=True)
    if 400 <= status < 500 and is_json and op in _PER_ITEM_OPS:
        raise Rejected(said, code=code, http_status=status)
    if 400 <= status < 500:
        raise ProtocolError(f"{said}: {_brief(answer.body)} (is api.base_url right?)")
    if code is not None:
        if op in _PER_ITEM_OPS:
            raise Rejected(f"{said} (unknown status_code)", code=code, http_status=status)
        raise ProtocolError(f"{said} (unknown status_code)")
    if not is_json:
        raise Retryable(f"{said}: non-JSON answer {_brief(answer.body)}", sent=True)
    raise Retryable(f"{said}: answer without status_code: {_brief(answer.body)}", sent=True)


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now())


def _remote_image(item: Mapping[str, Any], op: Op) -> RemoteImage:
    image_id: Any = None
    for name in _ID_FIELDS:
        if item.get(name) is not None:
            image_id = item[name]
            break
    if image_id is None:
        raise ProtocolError(f"{op}: no id under {', '.join(_ID_FIELDS)} in {_brief(item)}")
    if isinstance(image_id, bool) or not isinstance(image_id, int | str):
        raise ProtocolError(f"{op}: id is neither a number nor a string: {image_id!r}")
    url = item.get("url")
    metadata = item.get("metadata")
    score = item.get("score", item.get("similarity"))
    return RemoteImage(
        id=image_id,
        url=url if isinstance(url, str) else None,
        metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
    )


def _remote_images(result: Any, op: Op) -> list[RemoteImage]:
    if result is None:
        return []
    if not isinstance(result, list):
        raise ProtocolError(f"{op}: expected a list of images, got {_brief(result)}")
    images = []
    for item in result:
        if not isinstance(item, Mapping):
            raise ProtocolError(f"{op}: expected an object per image, got {_brief(item)}")
        images.append(_remote_image(item, op))
    return images


def _metadata_json(metadata: Mapping[str, Any]) -> bytes:
    reserved = sorted(RESERVED_METADATA_KEYS.intersection(metadata))
    if reserved:
        raise ValueError(f"metadata keys {', '.join(reserved)} are reserved by the service")
    return json.dumps(dict(metadata), ensure_ascii=False, separators=(",", ":")).encode()


def _check_b64(image_b64: bytes) -> None:
    if not isinstance(image_b64, bytes | bytearray):
        raise TypeError(f"add() takes base64 bytes, got {type(image_b64).__name__}")
    if b'"' in image_b64 or b"\\" in image_b64:
        raise ValueError("add() takes base64 bytes; these contain characters base64 never has")


def _check_id(image_id: object) -> None:
    if isinstance(image_id, bool) or not isinstance(image_id, int | str):
        raise TypeError(f"image ids are int or str, got {image_id!r}")


def _brief(value: object, limit: int = 120) -> str:
    if isinstance(value, bytes | bytearray):
        text = bytes(value[:limit]).decode("utf-8", "replace")
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")
