"""``reconcile --adopt``'s downloads: the bytes at an image's url, on any host, over aiohttp.

The five API calls go over :class:`pipeline.api.http.HttpPool`, which talks to ``api.base_url``'s origin
alone and follows no redirect. An image's url may point anywhere (a CDN, a redirect to one), so its
bytes are fetched here, through an aiohttp session made at the first download: a run that adopts nothing
never imports aiohttp or yarl. The API's credentials go along only to the API's own origin. What this
module raises is the pipeline's (:func:`pipeline.api.transport.translated`); the retry policy and the
limiter around each download are the client's (:meth:`FaceSearchClient.download`).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from pipeline.api.answers import AnswerTooLarge
from pipeline.api.transport import Credentials, read_capped, translated
from pipeline.errors import Rejected, Retryable

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL


class Downloader:
    """One client's downloads: its aiohttp session (made when first needed) and the API's origin."""

    def __init__(
        self, base_url: str, credentials: Credentials, *, timeout: float, connect_timeout: float, limit: int
    ) -> None:
        self.base_url = base_url
        self._credentials = credentials
        self._timeouts = (timeout, connect_timeout)
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def target(self, url: str) -> tuple[URL, bool]:
        """``url`` parsed, and whether it is on the API's own origin (it then gets the credentials);
        :class:`Rejected` when it is not http(s) at all."""
        from yarl import URL

        target, base = URL(url), self._base
        if target.scheme not in ("http", "https") or not target.host:
            raise Rejected(f"download: not an http(s) url: {url!r}", code=None)
        return target, (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)

    @cached_property
    def _base(self) -> URL:
        """``base_url`` parsed once, at the first download (a run that adopts nothing imports no yarl)."""
        from yarl import URL

        return URL(self.base_url)

    async def fetch(self, url: URL, with_auth: bool, limit: int) -> bytes:
        """One GET of ``url``: its body (at most ``limit`` bytes, else :class:`Rejected`), an HTTP 5xx
        :class:`Retryable`, any other answer but 200 :class:`Rejected`."""
        session = self._session_now()
        headers = {"Authorization": self._credentials.header} if with_auth else {}
        with translated("download", self._credentials):
            async with session.get(url, headers=headers) as resp:
                try:
                    body = await read_capped(resp, "download", limit)
                except AnswerTooLarge:  # the same url would give the same bytes: not retried
                    raise Rejected(f"download: more than {limit} bytes", code=None) from None
        if resp.status >= 500:
            raise Retryable(f"download: HTTP {resp.status}", sent=True)
        if resp.status != 200:
            raise Rejected(f"download: HTTP {resp.status}", code=None, http_status=resp.status)
        return body

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        """The session's timeouts, as aiohttp takes them (``api.timeout``, ``api.connect_timeout``)."""
        import aiohttp

        total, connect = self._timeouts
        return aiohttp.ClientTimeout(total=total, sock_connect=connect)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._session
