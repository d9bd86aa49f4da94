"""A server on 127.0.0.1 that answers each request with exact bytes, for answers no real service gives.

``async with Wire(script) as wire:`` listens on a free port; ``wire.base_url`` is an API base url on it.
Each request is read whole (request line, headers, ``Content-Length`` body) and recorded in
``wire.requests``; the next entry of ``script`` says what to do: ``bytes`` are written as they are
(the connection stays open for the next request), ``CLOSE`` closes the connection without a word,
``HANG`` answers nothing (the connection stays open), ``Later(seconds, step)`` waits first, a tuple
does each of its steps in turn (``(answer, CLOSE)``: answer, then close), a callable gets the request
and returns a step. ``wire.connections`` counts the connections accepted; ``Wire(script, tls=ctx)``
serves TLS.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

CLOSE = object()
HANG = object()


@dataclass
class Later:
    seconds: float
    step: Any


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int


Step = bytes | object | Callable[[Request], Any]


def http(
    status: int, body: bytes | Any = b"", headers: Sequence[tuple[str, str]] = (), *, close: bool = False
) -> bytes:
    """One answer's bytes: ``body`` (JSON-encoded unless bytes) with its ``Content-Length``."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(raw)}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += ["Connection: close"] if close else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


def ok(result: Any) -> bytes:
    return http(200, {"result": result, "status_code": 0, "message": "ok"})


@dataclass
class Wire:
    script: list[Step]
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}/api/v2/face_search"

    async def __aenter__(self) -> Wire:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:  # the connections still open (a server's close leaves them, in 3.11)
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *rest = head.decode("latin-1").split("\r\n")
                method, target, _ = line.split(" ", 2)
                headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(method, target, headers, body, number)
                self.requests.append(request)
                step: Any = self.script.pop(0) if self.script else CLOSE
                if callable(step):
                    step = step(request)
                for each in step if isinstance(step, tuple) else (step,):
                    if isinstance(each, Later):
                        await asyncio.sleep(each.seconds)
                        each = each.step
                    if each is CLOSE:
                        return
                    if each is HANG:
                        await asyncio.sleep(3600)
                    writer.write(each)
                    await writer.drain()
        finally:
            self._tasks.discard(task)
            writer.close()
