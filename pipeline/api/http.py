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
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import httptools

from pipeline.api.answers import AnswerTooLarge, Op
from pipeline.errors import ConfigError, Retryable

if TYPE_CHECKING:
    from pipeline.api.transport import Credentials

#: The most header bytes an answer may have (names and values): the API sends a few hundred.
MAX_HEADER_BYTES = 64 * 1024
#: Bytes read from the socket at a time, into each connection's own buffer (an answer is a few hundred).
READ_BUFFER = 64 * 1024
#: Seconds an idle connection is kept for the next request (the service may close it sooner).
KEEPALIVE = 30.0


#: A request's body: bytes, or the pieces it is made of (joined once, behind the headers).
Body = bytes | tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer as received: its status, its ``Retry-After`` header, its whole body."""

    status: int
    retry_after: str | None
    body: bytes


class _Failed(Exception):
    """Raised inside a parser callback to stop at once; :meth:`_Connection.data_received` unwraps it."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives.

    Buffered: the transport reads into this connection's own buffer. A plain protocol gets a new
    ``bytes`` a read, allocated at 256 KiB and shrunk, which glibc serves with mmap, mremap and munmap:
    three system calls and a fresh page for a 300-byte answer.
    """

    def __init__(self) -> None:
        #: The loop it runs on (asked once: each ``get_running_loop()`` is a ``getpid`` system call).
        self._loop = asyncio.get_running_loop()
        self._buffer = memoryview(bytearray(READ_BUFFER))
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Reply] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._op: Op = "list"
        self._limit = 0
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._retry_after: str | None = None
        self._received = 0
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._has_length = False
        self._keep_alive = False

    # -- the request ----------------------------------------------------------------------------

    def send(self, data: bytes, op: Op, limit: int, timeout: float) -> asyncio.Future[Reply]:
        """Write one whole request; the future is its answer, or the error that ended it (no answer
        within ``timeout`` seconds is one)."""
        assert self.transport is not None and self._waiter is None
        self._op, self._limit, self._timeout = op, limit, timeout
        self._reset()
        self._waiter = waiter = self._loop.create_future()
        self._timer = self._loop.call_later(timeout, self._timed_out)
        self.transport.write(data)
        return waiter

    def abandon(self) -> None:
        """Close it at once: the answer was not (all) read, so it cannot carry another request."""
        self.closed = True
        self._waiter = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close an idle connection cleanly."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _timed_out(self) -> None:
        self._timer = None
        said = f"{self._op}: timed out: no answer within {self._timeout:g} s (api.timeout)"
        self._fail(Retryable(said, sent=True))

    @property
    def reusable(self) -> bool:
        """Open, its answer read whole, the service willing to keep it, and nothing of ours unsent
        (a service that answered before reading all of the body may not read the rest)."""
        return (
            not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
            and self._keep_alive
            and self.transport.get_write_buffer_size() == 0
        )

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._buffer[:nbytes])

    def data_received(self, data: memoryview) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is not in step any more
            self.abandon()
            return
        try:
            self._parser.feed_data(data)
            if not self._headers_done:
                self._received += len(data)
                if self._received > MAX_HEADER_BYTES:  # headers without end: a hostile or broken peer
                    raise _Failed(AnswerTooLarge(self._op, self._limit))
        except _Failed as failed:
            self._fail(failed.error)
        except httptools.HttpParserCallbackError as exc:
            failure = exc.__context__
            self._fail(failure.error if isinstance(failure, _Failed) else exc)
        except httptools.HttpParserError as exc:
            said = f"{self._op}: the answer is not HTTP ({exc}); is api.base_url right?"
            self._fail(Retryable(said, sent=True))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and not self._has_length and not self._keep_alive:
            self._complete()  # a body that ends with the connection (no length, no chunks)
            return
        reason = f": {exc}" if exc is not None else ""
        self._fail(Retryable(f"{self._op}: connection failed: the service closed it{reason}", sent=True))

    # -- httptools' callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None:  # a second answer to one request: the connection is out of step
            raise _Failed(Retryable(f"{self._op}: the service answered twice", sent=True))

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-length":
            self._has_length = True
            if value.strip().isdigit() and int(value) > self._limit:
                raise _Failed(AnswerTooLarge(self._op, self._limit, int(value)))
        elif lower == b"transfer-encoding":
            self._has_length = True  # chunked: the parser knows where it ends
        elif lower == b"retry-after":
            self._retry_after = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True
        # asked here: once feed_data returns, the parser has moved on and no longer knows
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            raise _Failed(AnswerTooLarge(self._op, self._limit))
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._reset()
            return
        self._complete()

    # -- ending one request ---------------------------------------------------------------------

    def _complete(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            waiter.set_result(Reply(self._status, self._retry_after, body))
        self._body = []

    def _fail(self, error: Exception) -> None:
        waiter = self._waiter
        self.abandon()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


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
        self._idle: list[_Connection] = []
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

    async def _connection(self, op: Op) -> _Connection:
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
                    _Connection,
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
