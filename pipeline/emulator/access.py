"""The access log of ``facesync serve --log``: one line per request, for a person watching the emulator.

Each line says when the request came (UTC), its method and path, the HTTP status and the API's
``status_code`` of its answer, the bytes in and out and how long the emulator took (until the answer
was ready, not until it was written). Every route is logged — API calls, image files, control routes —
and what the pipeline did beyond answering (``throttled``, ``fail_before``, ``stored_then_drop``, ...)
is named after it.

It never shows a credential: the Authorization header is not read, the query shows only ``offset``
and ``limit`` (the API's only parameters, and only as numbers; any other is counted, never shown) and
the live secret is masked wherever a client put it in the path. The line is made here and printed by
the caller through :func:`pipeline.output.terminal.shown`, so a path cannot write to the terminal.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Middleware

from pipeline.emulator.protocol import RequestRecord
from pipeline.emulator.settings import EmulatorSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Where the request pipeline leaves its record of an API request, for the access log to read.
RECORD = web.RequestKey("facesync_request_record", RequestRecord)
#: The query parameters shown (their values only when they are numbers, as the API's are).
_SHOWN_PARAMETERS = ("offset", "limit")
#: A path longer than this is cut (it is the client's, not ours).
_LONGEST_PATH = 300


def access_middleware(write: Callable[[str], None], settings: EmulatorSettings) -> Middleware:
    """An aiohttp middleware that calls ``write`` with one :func:`access_line` per request."""

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived = time.time()
        started = time.perf_counter()
        status: int | None = None
        length = 0
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own answers (no route, method not allowed)
            status, length = exc.status, len(exc.text or "")
            raise
        except BaseException:
            status, length = 500, 0
            raise
        else:
            status, length = response.status, response.content_length or 0
        finally:
            record = request.get(RECORD)
            if record is not None:
                status = record.http_status  # None: the connection was closed, unanswered
            code, outcome = (record.status_code, record.outcome) if record is not None else (None, "")
            took = (time.perf_counter() - started) * 1000
            bytes_in = request.content_length or 0
            line = access_line(arrived, request, status, code, bytes_in, length, took, outcome, settings)
            with contextlib.suppress(OSError, ValueError):  # a log gone (a closed pipe) fails no request
                write(line)
        return response

    return access


def access_line(
    arrived: float,
    request: web.Request,
    http_status: int | None,
    status_code: int | None,
    bytes_in: int,
    bytes_out: int,
    ms: float,
    outcome: str,
    settings: EmulatorSettings,
) -> str:
    """One request as the access log shows it (not yet escaped for a terminal)."""
    when = datetime.fromtimestamp(arrived, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    path = request.path
    if settings.api_secret and settings.api_secret in path:
        path = path.replace(settings.api_secret, "<secret>")
    if len(path) > _LONGEST_PATH:
        path = path[: _LONGEST_PATH - 1] + "…"
    answer = f"HTTP {http_status}" if http_status is not None else "no answer"
    code = f", status_code {status_code}" if status_code is not None else ""
    what = f" ({outcome})" if outcome and outcome != "ok" else ""
    return (
        f"{when} {request.method} {path}{shown_query(request)} {answer}{code}, "
        f"{bytes_in} B in, {bytes_out} B out, {ms:.1f} ms{what}"
    )


def shown_query(request: web.Request) -> str:
    """The query as the log shows it: ``offset`` and ``limit`` when they are numbers, and how many other
    parameters there were (a credential put in the query is never shown, nor its name)."""
    shown: list[str] = []
    hidden = 0
    for name, value in request.query.items():
        if name in _SHOWN_PARAMETERS and value.isascii() and value.isdigit() and len(value) <= 20:
            shown.append(f"{name}={value}")
        else:
            hidden += 1
    query = "?" + "&".join(shown) if shown else ""
    return f"{query} (+{hidden} query parameter(s) not shown)" if hidden else query
