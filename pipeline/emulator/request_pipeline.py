"""The request pipeline: what every API request passes through around its call, and the request log.

delay → stall → reset_before → fail_before → auth → throttle → body size (read at ``bandwidth_mbit``)
→ the call (→ ``store_then_drop`` / ``store_then_fail`` for adds), then one record in the log whatever
happened. The five calls themselves live with the :class:`~pipeline.emulator.server.Emulator`; they
see only a parsed body.

A client that goes away mid-request is routine for a server, not an error: the request is logged
as ``client_gone`` and nothing is raised to aiohttp, which would log a traceback for it. Exceptions
the handlers deal in::

    ClientGone   the connection closed before the answer could be sent: log it, send nothing
    Dropped      the call (store_then_drop) closes the connection itself, unanswered
    p.Refusal    an answer with a non-zero status_code, raised from deep in a call
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from pipeline.emulator import protocol as p
from pipeline.emulator.access import RECORD
from pipeline.emulator.clock import Clock
from pipeline.emulator.settings import EmulatorSettings
from pipeline.emulator.throttle import Throttle

Call = Callable[[web.Request, bytes], Awaitable[p.Answer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Log = Callable[[int | None, int | None, str], None]

logger = logging.getLogger(__name__)

UNREADABLE_BODY = "the body cannot be read (bad transfer or content encoding)"


class Dropped(Exception):
    """The call chose to close the connection without an answer."""


class ClientGone(Exception):
    """The client closed the connection before its answer was sent."""


class RequestLog:
    """The records of API requests, oldest first; tests can wait on it instead of polling."""

    def __init__(self) -> None:
        self._records: list[p.RequestRecord] = []
        self._grew = asyncio.Event()

    def append(self, record: p.RequestRecord) -> None:
        self._records.append(record)
        self._grew.set()

    def records(self) -> list[p.RequestRecord]:
        return list(self._records)

    def clear(self) -> None:
        self._records.clear()

    async def wait_for(self, count: int) -> list[p.RequestRecord]:
        """Wait until the log holds at least ``count`` records; return them."""
        while len(self._records) < count:
            self._grew.clear()
            await self._grew.wait()
        return self.records()


def authorized(header: str, api_key: str, api_secret: str) -> bool:
    """Whether an Authorization header carries these Basic credentials (compared in constant time)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    good_user = hmac.compare_digest(user.encode(), api_key.encode())
    return bool(sep) and good_user and hmac.compare_digest(password.encode(), api_secret.encode())


def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection: writing the returned response then fails quietly inside aiohttp."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


@web.middleware
async def quiet_disconnects(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """For the routes outside the pipeline (control, files): a client gone is no traceback either."""
    try:
        return await handler(request)
    except ConnectionError:
        logger.info("client gone before the answer: %s %s", request.method, request.path)
        return drop(request)
    except web.RequestPayloadError:
        return p.json_response({"error": UNREADABLE_BODY}, 400)


def is_list_from(request: web.Request, offset: int) -> bool:
    """Whether this is a listing page at or past ``offset``."""
    if request.method != "GET" or not request.path.rstrip("/").endswith("/images"):
        return False
    try:
        return int(request.query.get("offset", "0")) >= offset
    except ValueError:
        return False


class RequestPipeline:
    """Wraps each API call in the pipeline; shares the emulator's settings, RNG, throttle and log."""

    def __init__(
        self,
        settings: EmulatorSettings,
        rng: random.Random,
        clock: Clock,
        throttle: Throttle,
        log: RequestLog,
    ) -> None:
        self._settings = settings
        self._rng = rng
        self._clock = clock
        self._throttle = throttle
        self._log = log
        self._release = asyncio.Event()
        #: When the bytes read so far may all have arrived at ``bandwidth_mbit`` (the clock's time).
        self._paced_until = 0.0

    def release_stalls(self) -> None:
        """Let every stalled call go now (they drop their connection)."""
        self._release.set()
        self._release = asyncio.Event()

    def reset(self) -> None:
        """Back to a fresh start: stalled calls released, no body bytes owed to ``bandwidth_mbit``."""
        self.release_stalls()
        self._paced_until = 0.0

    def wrap(self, call: Call) -> Handler:
        """The aiohttp handler of ``call``: the pipeline around it, and its record in the log."""

        async def handle(request: web.Request) -> web.StreamResponse:
            arrived = time.time()

            def log(http_status: int | None, status_code: int | None, outcome: str) -> None:
                record = p.RequestRecord(
                    arrived,
                    request.method,
                    request.path,
                    http_status,
                    status_code,
                    outcome,
                    request.query_string,
                )
                self._log.append(record)
                request[RECORD] = record  # for the access log (``serve --log``), if any

            try:
                return await self._run(request, call, log)
            except ClientGone:
                log(None, None, "client_gone")
                logger.info("client gone before the answer: %s %s", request.method, request.path)
                return drop(request)

        return handle

    async def _run(self, request: web.Request, call: Call, log: Log) -> web.StreamResponse:
        s = self._settings
        if s.delay > 0:
            await self._clock.sleep(self._rng.uniform(0.0, s.delay))
        if s.stall > 0 and self._rng.random() < s.stall:
            log(None, None, "stalled")
            await self._stall()
            return drop(request)
        if s.reset_before > 0 and self._rng.random() < s.reset_before:
            log(None, None, "reset_before")
            return drop(request)
        fails = s.fail_before > 0 and self._rng.random() < s.fail_before
        if fails or (s.fail_list_from_offset is not None and is_list_from(request, s.fail_list_from_offset)):
            return self._fail(request, log, "fail_before")
        try:
            answer = await self._answer(request, call)
        except Dropped:
            log(None, None, "stored_then_drop")
            return drop(request)
        if answer.outcome == "stored_then_fail":
            return self._fail(request, log, answer.outcome)
        _check_still_there(request)
        log(answer.http_status, answer.status_code, answer.outcome)
        return answer.response()

    def _fail(self, request: web.Request, log: Log, outcome: str) -> web.StreamResponse:
        """An injected failure's answer (``fail_status``, no status_code)."""
        s = self._settings
        _check_still_there(request)
        log(s.fail_status, None, outcome)
        return p.failure_response(s.fail_status, s.fail_body_html)

    async def _answer(self, request: web.Request, call: Call) -> p.Answer:
        """Auth, then throttle, then the body, then the call: the first that refuses answers."""
        s = self._settings
        if not authorized(request.headers.get("Authorization", ""), s.api_key, s.api_secret):
            return p.Answer(s.auth_http_status, p.BAD_CREDENTIALS, outcome="auth")
        storm = s.throttle_share > 0 and self._rng.random() < s.throttle_share
        if storm or not self._throttle.admit(s.quota, s.rate_limit):
            headers = {"Retry-After": f"{s.retry_after:g}"} if s.retry_after is not None else {}
            return p.Answer(s.throttle_http_status, p.OUT_OF_REQUESTS, outcome="throttled", headers=headers)
        try:
            body = await self._read_body(request)
            if body is None:
                return p.Answer(413, p.BAD_FORMAT, detail="the body is too large", outcome="rejected")
            return await call(request, body)
        except p.Refusal as refusal:
            if refusal.answer.http_status == 400:
                refusal.answer.http_status = s.refusal_http_status
            return refusal.answer

    async def _pace(self, size: int) -> None:
        """Read ``size`` more bytes no faster than ``bandwidth_mbit``, shared by every request (as one
        uplink is): while a body waits here, the connection's buffers fill and the client waits too."""
        mbit = self._settings.bandwidth_mbit
        if mbit is None:
            return
        now = self._clock.monotonic()
        self._paced_until = max(now, self._paced_until) + size * 8 / (mbit * 1e6)
        await self._clock.sleep(self._paced_until - now)

    async def _stall(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), timeout=self._settings.stall_seconds)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The whole body, or None when it is over ``max_body_bytes`` (read to the end regardless).

        Raises ClientGone when the client leaves before the end, Refusal when the body is garbled.
        """
        limit = self._settings.max_body_bytes
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                chunk = await request.content.readany()
            except ConnectionError:
                raise ClientGone() from None
            except web.RequestPayloadError:
                raise p.Refusal(p.BAD_FORMAT, UNREADABLE_BODY) from None
            if not chunk:
                break
            await self._pace(len(chunk))
            total += len(chunk)
            if total <= limit:
                chunks.append(chunk)
            else:
                chunks.clear()
        return None if total > limit else b"".join(chunks)


def _check_still_there(request: web.Request) -> None:
    """Raise ClientGone when the connection has closed, so an answer nobody gets is not logged as sent."""
    if request.transport is None or request.transport.is_closing():
        raise ClientGone()
