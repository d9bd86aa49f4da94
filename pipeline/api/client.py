"""The Face Search API client: the five calls, and the only module that talks HTTP.

Every request to the API goes over :class:`pipeline.api.http.HttpPool` (keep-alive connections to its
one origin, errors already the pipeline's); every answer is read by
:func:`pipeline.api.answers.interpret`. Every public call goes through
:meth:`FaceSearchClient._call`: the limiter (tokens, in-flight cap, throttle gate) and the retry
policy, so sync, reconcile and search all behave the same. What maps to what: ``docs/client.md``.
``download`` (``reconcile --adopt``: urls on any host, redirects followed) goes through aiohttp, in
:mod:`pipeline.api.downloads`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote

import pybase64

from pipeline.api.answers import (
    Answer,
    Op,
    ProtocolError,
    RemoteImage,
    brief,
    interpret,
    listed_items,
    remote_image,
    remote_images,
)
from pipeline.api.bodies import add_body, add_parts, delete_body, search_body, update_body
from pipeline.api.breaker import CircuitBreaker
from pipeline.api.downloads import Downloader
from pipeline.api.limiter import Limiter
from pipeline.api.paging import Pager
from pipeline.api.retry import RetryPolicy
from pipeline.api.transport import Credentials
from pipeline.config import ApiConfig, LimitsConfig
from pipeline.errors import ConfigError, PipelineError, Rejected, Retryable, ServiceFailing, Throttled
from pipeline.keys import ImageId

if TYPE_CHECKING:
    from yarl import URL

    from pipeline.api.http import Body, HttpPool

__all__ = ["FaceSearchClient", "ImageId", "ProtocolError", "RemoteImage"]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: The client's defaults are the config's: a client built in code behaves as an empty config says.
_API = ApiConfig()


class FaceSearchClient:
    """An async client for the Face Search API (list, search, add, update metadata, delete)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout: float = _API.timeout,
        connect_timeout: float = _API.connect_timeout,
        page_size: int = _API.page_size,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
        max_answer_bytes: int = _API.max_answer_bytes,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._credentials = Credentials(api_key, api_secret)
        self._timeouts = (timeout, connect_timeout)
        self.page_size = page_size
        #: The longest answer read (``api.max_answer_bytes``); longer ones are a failed call.
        self.max_answer_bytes = max_answer_bytes
        self.limiter = limiter
        self.retry = retry
        #: Stops every call once the service is plainly failing (an outage): see api/breaker.py.
        self.breaker = CircuitBreaker()
        #: The last listing's pager (its requests and backups), once one ran.
        self.pager: Pager[Any] | None = None
        self._max_connections = max_connections
        self._pool: HttpPool | None = None
        #: ``download``'s aiohttp session and what it needs (api/downloads.py).
        self.downloads = Downloader(
            self.base_url,
            self._credentials,
            timeout=timeout,
            connect_timeout=connect_timeout,
            limit=max_connections,
        )
        #: HTTP requests sent (a connection refused before sending is not counted).
        self.requests = 0
        #: Throttled answers seen (code 4 or HTTP 429), retried or not.
        self.throttled = 0
        #: Calls waiting for, or making, a retry now (a failed attempt behind them): the progress bar's.
        self.retrying = 0

    @classmethod
    def from_config(cls, api: ApiConfig, limits: LimitsConfig, *, base_url: str | None = None) -> Self:
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
            limiter=Limiter.from_limits(limits),
            retry=RetryPolicy.from_limits(limits),
            max_connections=max(64, limits.concurrency * 2),
            max_answer_bytes=api.max_answer_bytes,
        )

    def __repr__(self) -> str:
        return f"FaceSearchClient({self.base_url!r}, api_key={self.api_key!r}, requests={self.requests})"

    async def __aenter__(self) -> FaceSearchClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections (if any were opened); the client can open new ones later."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        await self.downloads.close()

    # -- the five calls -------------------------------------------------------------------------

    async def add(self, image_b64: bytes, metadata: Mapping[str, Any] | None = None) -> RemoteImage:
        """Store one image given as base64 bytes; return its new id (and url)."""
        return await self._add(add_body(image_b64, metadata))

    async def add_image(self, data: bytes, metadata: Mapping[str, Any] | None = None) -> RemoteImage:
        """Encode raw image bytes with pybase64, then :meth:`add` them (that base64 is not checked again)."""
        return await self._add(add_parts(pybase64.b64encode(data), metadata))

    async def _add(self, body: Body) -> RemoteImage:
        result, lost = await self._call_noting_lost("add", lambda: self._send("add", "POST", "/images", body))
        if not isinstance(result, Mapping):
            raise ProtocolError(f"add: expected an object describing the new image, got {brief(result)}")
        image = remote_image(result, "add")
        return replace(image, duplicate_risk=True) if lost else image

    async def list_page(self, offset: int, limit: int | None = None) -> list[RemoteImage]:
        """One page of the collection: at most ``limit`` images after skipping ``offset``."""
        url = _page(offset, self.page_size if limit is None else limit)
        result = await self._call("list", lambda: self._send("list", "GET", url, None))
        return remote_images(result, "list")

    async def iter_pages(self, page_size: int | None = None) -> AsyncIterator[list[RemoteImage]]:
        """The whole collection, page by page, each image once, safe against images added or deleted
        by others while it pages (:mod:`pipeline.api.paging`); ``self.pager`` keeps its counts."""
        self.pager = Pager(self.list_page, self.page_size if page_size is None else page_size)
        async for page in self.pager.pages():
            yield page

    async def list_items(self, offset: int, limit: int | None = None) -> list[dict[str, Any]]:
        """:meth:`list_page` as plain dicts (:func:`~pipeline.api.answers.listed_items`): ``id``,
        ``url``, ``metadata``, checked but not made into objects; what reconcile reads."""
        url = _page(offset, self.page_size if limit is None else limit)
        return listed_items(await self._call("list", lambda: self._send("list", "GET", url, None)), "list")

    async def iter_images(self, page_size: int | None = None) -> AsyncIterator[RemoteImage]:
        """Every image in the collection, each id once (see :meth:`iter_pages`)."""
        async for page in self.iter_pages(page_size):
            for image in page:
                yield image

    async def search(self, data: bytes) -> list[RemoteImage]:
        """The stored images that match the face in ``data`` (raw image bytes)."""
        body = search_body(pybase64.b64encode(data))
        result = await self._call("search", lambda: self._send("search", "POST", "/search", body))
        return remote_images(result, "search")

    async def update_metadata(self, image_id: ImageId, metadata: Mapping[str, Any]) -> None:
        """Replace one image's metadata (``PUT /images/<id>``)."""
        body = update_body(image_id, metadata)
        url = "/images/" + quote(str(image_id), safe="")
        await self._call("update", lambda: self._send("update", "PUT", url, body))

    async def download(self, url: str, max_bytes: int | None = None) -> bytes:
        """The bytes at an image's url (``reconcile --adopt`` hashes them). The credentials go along
        only to the API's own host: a url elsewhere (a CDN) gets none. A body over ``max_bytes``
        (default ``api.max_answer_bytes``) is refused (:class:`Rejected`) once that much is read."""
        target, same_origin = self.downloads.target(url)
        limit = self.max_answer_bytes if max_bytes is None else max_bytes
        return await self._call("download", lambda: self._fetch(target, same_origin, limit))

    async def _fetch(self, url: URL, with_auth: bool, limit: int) -> bytes:
        self.requests += 1
        return await self.downloads.fetch(url, with_auth, limit)

    async def delete(self, ids: Sequence[ImageId]) -> None:
        """Delete these ids in exactly one call (none for an empty list).

        Batching is not done here: every delete of a run goes through :mod:`pipeline.engine.deletes`,
        which sizes the batches (``api.delete_batch``) and records each before the next.
        """
        if not ids:
            return
        body = delete_body(ids)
        await self._call("delete", lambda: self._send("delete", "DELETE", "/images", body))

    # -- the one path every request takes ------------------------------------------------------

    async def _call(self, op: Op, send: Callable[[], Awaitable[T]]) -> T:
        """Send through the limiter (looping on throttles) inside the retry policy (for Retryable), unless
        the circuit breaker is open; a call that fails after all its retries is counted by the breaker."""
        return (await self._call_noting_lost(op, send))[0]

    async def _call_noting_lost(self, op: Op, send: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """:meth:`_call`, and whether an earlier attempt was sent and its answer lost."""
        breaker = self.breaker
        sent = False
        tries = 0

        async def attempt() -> T:
            nonlocal sent, tries
            breaker.check(sent=sent)
            tries += 1
            if tries == 2:  # a retry: the progress bar says "retrying (n)" while any is
                self.retrying += 1
            try:
                return await self._through_limiter(op, send)
            except Retryable as exc:
                sent = sent or exc.sent
                raise

        try:
            result = await (self.retry.call(attempt) if self.retry is not None else attempt())
        except ServiceFailing as exc:
            exc.lost_attempt = sent
            raise
        except Retryable as exc:
            exc.lost_attempt = sent
            breaker.failed(exc)
            breaker.check(sent=sent)  # this failure opened it: say so, not just the last error
            raise
        except PipelineError as exc:  # refused, throttled away, wrong credentials: after a lost attempt?
            exc.lost_attempt = sent
            raise
        finally:
            self.retrying -= tries > 1
        breaker.succeeded()
        return result, sent

    async def _through_limiter(self, op: Op, send: Callable[[], Awaitable[T]]) -> T:
        limiter = self.limiter
        if limiter is None:
            return await send()
        # The connections' pool first (its first use imports httptools): made after its token, the
        # first request would leave that much late, next to the second, and a service counting a
        # one-second window at the fixed rate would see both in it.
        self._pool_now()
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

    async def _send(self, op: Op, method: str, target: str, body: Body | None) -> Any:
        """One HTTP request for ``target`` (after ``base_url``: ``/images``); returns the answer's
        ``result`` or raises the mapped error."""
        pool = self._pool_now()
        self.requests += 1
        try:
            reply = await pool.request(op, method, target, body, limit=self.max_answer_bytes)
        except Retryable as exc:
            self.requests -= not exc.sent  # never sent: a connection refused is not a request
            raise
        try:
            return interpret(op, Answer(reply.status, reply.body, reply.retry_after))
        except Throttled:
            self.throttled += 1
            raise

    def _pool_now(self) -> HttpPool:
        if self._pool is None or self._pool.closed:
            from pipeline.api.http import HttpPool

            self._pool = HttpPool(
                self.base_url,
                self._credentials,
                limit=self._max_connections,
                timeout=self._timeouts[0],
                connect_timeout=self._timeouts[1],
            )
        return self._pool


def _page(offset: int, limit: int) -> str:
    """A listing page's target."""
    return f"/images?offset={offset}&limit={limit}"
