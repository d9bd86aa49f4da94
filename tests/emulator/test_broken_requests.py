"""Requests that end badly: clients that go away mid-request, bodies that cannot be read.

A client that disconnects is routine for a server: the request is logged as ``client_gone``, no
traceback is logged (aiohttp prints one per handler that raises), and the next client is answered.
Raw sockets, because aiohttp's client will not send a short body or go away on cue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from urllib.parse import urlsplit

import pytest

from pipeline.emulator import PREFIX, Emulator

from .apiclient import Api, b64, basic_auth
from .fakeclock import FakeClock

IMAGES = f"{PREFIX}/images"


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured log record that carries a traceback or is a warning or worse."""
    return [
        f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING
    ]


def request_head(method: str, path: str, content_length: int | None = None, auth: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if auth:
        lines.append(f"Authorization: {basic_auth('demo-key', 'demo-secret')}")
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def connect(emulator: Emulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(emulator.base_url)
    assert url.hostname is not None and url.port is not None
    return await asyncio.open_connection(url.hostname, url.port)


async def leave_and_see_the_server_notice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close our sending side; the server then closes the connection, and we read its end."""
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_client_gone_while_sending_its_body_is_logged_as_client_gone_without_a_traceback(
    clocked_emulator: Emulator, clocked_api: Api, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.DEBUG)
    _, writer = await connect(clocked_emulator)
    writer.write(request_head("POST", IMAGES, content_length=100_000) + b'{"image": {"base64": "')
    await writer.drain()
    if how == "reset":
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
    writer.close()
    [record] = await asyncio.wait_for(clocked_emulator.wait_for_requests(1), timeout=5)
    assert (record.method, record.path, record.http_status, record.status_code, record.outcome) == (
        "POST",
        IMAGES,
        None,
        None,
        "client_gone",
    )
    assert (await clocked_api.list()).code == 0
    assert clocked_emulator.images() == []
    assert tracebacks(caplog) == []


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_client_gone_while_its_call_is_under_way_is_logged_as_client_gone_without_a_traceback(
    clocked_emulator: Emulator,
    clocked_api: Api,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps({"image": {"base64": b64(b"any bytes")}}).encode() if method == "POST" else b""
    clocked_emulator.configure(delay=1.0)
    clock.hold()
    reader, writer = await connect(clocked_emulator)
    writer.write(request_head(method, IMAGES, content_length=len(body) if body else None) + body)
    await clock.sleeping.wait()
    await leave_and_see_the_server_notice(reader, writer)
    clock.wake()
    [record] = await asyncio.wait_for(clocked_emulator.wait_for_requests(1), timeout=5)
    assert (record.method, record.http_status, record.status_code, record.outcome) == (
        method,
        None,
        None,
        "client_gone",
    )
    clocked_emulator.configure(delay=0.0)
    assert (await clocked_api.list()).code == 0
    assert tracebacks(caplog) == []


async def test_client_gone_from_a_control_route_leaves_no_traceback(
    clocked_emulator: Emulator, clocked_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reader, writer = await connect(clocked_emulator)
    writer.write(request_head("POST", "/_emulator/settings", content_length=1000, auth=False) + b"{")
    await leave_and_see_the_server_notice(reader, writer)
    # The handler woke to the disconnect before this request was even sent; it is answered all the same.
    assert (await clocked_api.control("GET", "/settings")).status == 200
    assert clocked_emulator.requests == []
    assert tracebacks(caplog) == []


@pytest.mark.parametrize("path", [IMAGES, "/_emulator/settings"])
async def test_a_body_with_a_broken_content_encoding_is_http_400_not_a_handler_error(
    clocked_api: Api, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.DEBUG)
    root = clocked_api.base_url.split(PREFIX)[0]
    headers = {"Authorization": clocked_api.auth, "Content-Encoding": "gzip"}
    async with clocked_api.session.post(root + path, data=b"not gzip at all", headers=headers) as resp:
        assert resp.status == 400
        body = await resp.json()
    if path == IMAGES:
        assert (body["status_code"], body["message"]) == (
            6,
            "Incorrect format type: the body cannot be read (bad transfer or content encoding)",
        )
    else:
        assert body == {"error": "the body cannot be read (bad transfer or content encoding)"}
    assert (await clocked_api.list()).code == 0
    # aiohttp itself still logs "Unhandled exception" when, after the answer, its lingering close
    # drains the rest of such a body and meets the decoding error again: not the handler's doing.
    assert not [r for r in caplog.records if r.getMessage().startswith("Error handling request")]
