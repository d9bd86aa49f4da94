"""One keep-alive HTTP/1.1 connection to the API: a request written whole, its answer parsed by
``httptools`` (llhttp) as it arrives, into a status, ``Retry-After`` and a body capped at the caller's
limit. :class:`pipeline.api.http.HttpPool` keeps them; the module there says what the layer does and
does not do, and which errors mean what.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools

from pipeline.api.answers import AnswerTooLarge, Op
from pipeline.errors import Retryable

#: The most header bytes an answer may have (names and values): the API sends a few hundred.
MAX_HEADER_BYTES = 64 * 1024
#: Bytes read from the socket at a time, into each connection's own buffer (an answer is a few hundred).
READ_BUFFER = 64 * 1024
#: Seconds an idle connection is kept for the next request (the service may close it sooner).
KEEPALIVE = 30.0


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer as received: its status, its ``Retry-After`` header, its whole body."""

    status: int
    retry_after: str | None
    body: bytes


class _Failed(Exception):
    """Raised inside a parser callback to stop at once; :meth:`Connection.data_received` unwraps it."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class Connection(asyncio.BufferedProtocol):
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
