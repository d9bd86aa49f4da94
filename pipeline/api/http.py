"""The API's HTTP/1.1 connections: a keep-alive pool to its one origin, lean enough not to be the cost.

Every API call is a small request (or one image's body) to one host, answered by a small JSON body;
aiohttp's client spent ~300 µs of CPU on each (its session, request and response objects, cookie jar,
redirects, tracing, timers), twice what sending it costs, and on the client's one CPU that was most of
what an upload does besides the work it must do (docs/performance.md, "Issue 23, round 4"). Here a
request is one ``write`` of bytes built once, and its answer is parsed by ``httptools`` (llhttp, the
parser Node.js uses: chunked bodies, lengths, keep-alive, all in C) straight into a status, the one
header the client reads and a body capped at ``api.max_answer_bytes``.

What it does not do, on purpose: follow redirects (an API that answers 3xx is the wrong
``api.base_url``: the error says where it points), decompress (it asks for none), use a proxy (the
aiohttp session never did), or talk to any host but ``api.base_url``'s (``reconcile --adopt``'s
downloads, from wherever an image's url points, still go through aiohttp).

Errors are the pipeline's: a connection that cannot be made is :class:`Retryable` with ``sent=False``
(nothing reached the service); one lost or timed out after the request was written is ``sent=True``
(an add may have been stored); an answer that is not HTTP is ``sent=True`` too.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import time
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from pipeline.api.answers import Op
from pipeline.api.connection import KEEPALIVE, Connection, Reply
from pipeline.errors import ConfigError, Retryable

if TYPE_CHECKING:
    from pipeline.api.transport import Credentials

#: A request's body: bytes, or the pieces it is made of (joined once, behind the headers).
Body = bytes | tuple[bytes, ...]


class HttpPool:
    """Keep-alive connections to ``base_url``'s origin, at most ``limit`` open at once."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        limit: int = 64,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        user_agent: str = "facesync",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid URL: {base_url!r}: api.base_url must be http:// or https://host/...")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"invalid URL: {base_url!r}: the port is not a number") from None
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = port if port is not None else (443 if self.tls else 80)
        #: The path every request's target starts with (``/api/v2/face_search``), percent-encoded.
        self.prefix = quote(parts.path.rstrip("/"), safe="/%:@!$&'()*+,;=-._~")
        default_port = self.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if default_port else f"{host}:{self.port}"
        #: The headers every request carries, after its request line (the credentials are base64).
        self._headers = (
            f"Host: {authority}\r\nAuthorization: {credentials.header}\r\nAccept: application/json\r\n"
            f"User-Agent: {user_agent}\r\n"
        ).encode("latin-1")
        self._limit = limit
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[Connection] = []
        self._ssl: _ssl.SSLContext | None = None
        self.closed = False

    async def request(self, op: Op, method: str, target: str, body: Body | None, *, limit: int) -> Reply:
        """Send one request for ``target`` (after the prefix: ``/images?offset=0&limit=100``); its answer,
        the body at most ``limit`` bytes, within the pool's ``timeout`` of the request being written.
        Connection errors are :class:`Retryable` (see the module)."""
        head = f"{method} {self.prefix}{target} HTTP/1.1\r\n".encode("latin-1") + self._headers
        if body is None:
            data = head + b"\r\n"
        else:
            parts = (body,) if isinstance(body, bytes) else body
            size = sum(map(len, parts))
            length = b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size
            data = b"".join((head, length, *parts))  # one copy of the image, however it came
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        async with self._slots:
            conn = await self._connection(op)
            try:
                reply = await conn.send(data, op, limit, self._timeout)
            except BaseException:
                conn.abandon()
                raise
            if conn.reusable and not self.closed:
                conn.idle_since = self._now()
                self._idle.append(conn)
            else:
                conn.abandon()
            return reply

    async def _connection(self, op: Op) -> Connection:
        """An idle connection still open (the most recent first), or a new one."""
        idle, now = self._idle, self._now()
        while idle:
            conn = idle.pop()
            if conn.reusable and now - conn.idle_since < KEEPALIVE:
                return conn
            conn.close()
        if self.closed:
            raise Retryable(f"{op}: the client is closed", sent=False)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    Connection,
                    self.host,
                    self.port,
                    ssl=self._tls() if self.tls else None,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            raise Retryable(
                f"{op}: cannot connect: no connection to {self.host}:{self.port} within "
                f"{self._connect_timeout:g} s (api.connect_timeout)",
                sent=False,
            ) from None
        except OSError as exc:  # refused, unreachable, no such host, a certificate refused
            raise Retryable(f"{op}: cannot connect to {self.host}:{self.port}: {exc}", sent=False) from None
        return conn

    def _tls(self) -> _ssl.SSLContext:
        if self._ssl is None:
            self._ssl = _ssl.create_default_context()
        return self._ssl

    def _now(self) -> float:
        return time.monotonic()

    def close(self) -> None:
        """Close every idle connection; one in use closes when its request ends."""
        self.closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
