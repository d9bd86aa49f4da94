"""The API's HTTP/1.1 connections (``pipeline/api/http.py``), against exact answers on a real socket.

Each test scripts a server on 127.0.0.1 (:mod:`tests.api.wire`) and talks to it through the client, as a
run does: keep-alive and when a connection is not reused, every way an answer can be framed or broken,
the caps on an answer, timeouts and cancellation, TLS.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import pytest

from pipeline.api import FaceSearchClient
from pipeline.api.answers import AnswerTooLarge
from pipeline.api.connection import MAX_HEADER_BYTES
from pipeline.errors import ConfigError, Retryable
from tests.api.wire import CLOSE, HANG, Later, Wire, http, ok

PAGE: list[Any] = []


def client(wire: Wire, **kwargs: Any) -> FaceSearchClient:
    return FaceSearchClient(wire.base_url, "key", "secret", **kwargs)


def added(n: int) -> bytes:
    return ok({"id": n, "url": f"http://x/{n}.jpg"})


async def test_one_connection_carries_every_request_and_says_who_sends_them() -> None:
    async with Wire([ok(PAGE)] * 20) as wire, client(wire) as api:
        for _ in range(20):
            assert await api.list_page(0) == []
        port = wire.base_url.split(":")[2].split("/")[0]
    assert wire.connections == 1 and api.requests == 20
    first = wire.requests[0]
    assert (first.method, first.target) == ("GET", "/api/v2/face_search/images?offset=0&limit=100")
    assert first.headers["host"] == f"127.0.0.1:{port}"
    assert first.headers["user-agent"] == "facesync"
    assert "accept-encoding" not in first.headers  # nothing compressed comes back
    assert "content-type" not in first.headers and first.body == b""


async def test_concurrent_requests_open_at_most_the_pool_s_connections() -> None:
    async with Wire([Later(0.02, ok(PAGE))] * 40) as wire, client(wire, max_connections=4) as api:
        await asyncio.gather(*(api.list_page(0) for _ in range(40)))
    assert wire.connections == 4 and len(wire.requests) == 40


async def test_an_answer_that_closes_the_connection_is_read_and_the_next_request_opens_another() -> None:
    closing = http(200, {"result": [], "status_code": 0}, close=True)
    async with Wire([closing, ok(PAGE)]) as wire, client(wire) as api:
        assert await api.list_page(0) == [] and await api.list_page(0) == []
    assert wire.connections == 2


async def test_a_connection_the_service_closed_while_idle_is_not_used_again() -> None:
    async with Wire([(ok(PAGE), CLOSE), ok(PAGE)]) as wire, client(wire) as api:
        await api.list_page(0)
        await asyncio.sleep(0.1)  # the close reaches the client
        assert await api.list_page(0) == []
    assert wire.connections == 2


async def test_a_chunked_answer_is_read_whole() -> None:
    body = b'{"result": {"id": 7}, "status_code": 0}'
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 5]), body[i : i + 5]) for i in range(0, len(body), 5)
    )
    async with Wire([chunked + b"0\r\n\r\n", added(8)]) as wire, client(wire) as api:
        assert (await api.add(b"QUJD")).id == 7
        assert (await api.add(b"QUJD")).id == 8
    assert wire.connections == 1


async def test_an_answer_without_a_length_ends_with_its_connection() -> None:
    unframed = b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"result": {"id": 3}, "status_code": 0}'
    async with Wire([(unframed, CLOSE), added(4)]) as wire, client(wire) as api:
        assert (await api.add(b"QUJD")).id == 3
        assert (await api.add(b"QUJD")).id == 4
    assert wire.connections == 2


async def test_an_interim_100_continue_is_skipped() -> None:
    async with Wire([b"HTTP/1.1 100 Continue\r\n\r\n" + added(5)]) as wire, client(wire) as api:
        assert (await api.add(b"QUJD")).id == 5


async def test_an_answer_said_to_be_too_long_is_refused_unread() -> None:
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n" + b"x" * 1000
    async with Wire([huge]) as wire, client(wire, max_answer_bytes=10_000) as api:
        with pytest.raises(AnswerTooLarge, match="999999999 bytes") as info:
            await api.list_page(0)
    assert info.value.sent is True


async def test_a_chunked_answer_too_long_is_cut_short() -> None:
    chunk = b"1000\r\n" + b"x" * 4096 + b"\r\n"
    endless = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 10
    async with Wire([(endless, HANG)]) as wire, client(wire, max_answer_bytes=10_000) as api:
        with pytest.raises(AnswerTooLarge, match="cut short"):
            await api.list_page(0)


async def test_headers_too_long_are_refused() -> None:
    pads = MAX_HEADER_BYTES // 4000 + 1
    flood = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 4000) for i in range(pads))
    async with Wire([(flood, HANG)]) as wire, client(wire, timeout=10) as api:
        with pytest.raises(AnswerTooLarge):
            await api.list_page(0)


async def test_an_answer_that_is_not_http_is_a_retryable_sent_failure() -> None:
    async with Wire([b"SSH-2.0-OpenSSH_9.6\r\n"]) as wire, client(wire) as api:
        with pytest.raises(Retryable, match="not HTTP") as info:
            await api.list_page(0)
    assert info.value.sent is True


async def test_a_lost_answer_is_a_sent_failure_and_the_next_request_gets_its_own() -> None:
    async with Wire([CLOSE, added(2)]) as wire, client(wire) as api:
        with pytest.raises(Retryable, match="closed") as info:
            await api.add(b"QUJD")
        assert info.value.sent is True and api.requests == 1
        assert (await api.add(b"QUJD")).id == 2


async def test_no_answer_in_time_is_a_sent_failure_and_its_connection_is_dropped() -> None:
    async with Wire([HANG, added(2)]) as wire, client(wire, timeout=0.3) as api:
        with pytest.raises(Retryable, match="timed out") as info:
            await api.add(b"QUJD")
        assert info.value.sent is True
        assert (await api.add(b"QUJD")).id == 2
    assert wire.connections == 2


async def test_a_cancelled_request_never_lends_its_late_answer_to_the_next() -> None:
    async with Wire([Later(0.3, added(1)), added(2)]) as wire, client(wire) as api:
        first = asyncio.ensure_future(api.add(b"QUJD"))
        await asyncio.sleep(0.1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (await api.add(b"QUJD")).id == 2
    assert wire.connections == 2


@pytest.mark.parametrize("stray", [ok(PAGE), Later(0.05, ok(PAGE))], ids=["with-the-answer", "while-idle"])
async def test_bytes_nobody_asked_for_drop_the_connection(stray: Any) -> None:
    async with Wire([(ok(PAGE), stray), ok(PAGE)]) as wire, client(wire) as api:
        await api.list_page(0)
        await asyncio.sleep(0.2)  # the stray second answer has arrived
        assert await api.list_page(0) == []
    assert wire.connections == 2


async def test_a_refused_connection_was_not_sent_and_is_not_a_request() -> None:
    async with Wire([]) as wire:
        url = wire.base_url
    async with FaceSearchClient(url, "key", "secret") as api:
        with pytest.raises(Retryable, match="cannot connect") as info:
            await api.list_page(0)
    assert info.value.sent is False and api.requests == 0


@pytest.mark.parametrize(
    ("url", "secret", "said"),
    [
        ("ftp://host/api", "s", "invalid URL"),
        ("http:///api", "s", "invalid URL"),
        ("http://host:port/api", "s", "port"),
    ],
)
async def test_a_config_that_cannot_make_a_request_says_so_before_any(
    url: str, secret: str, said: str
) -> None:
    async with FaceSearchClient(url, "key", secret) as api:
        with pytest.raises(ConfigError, match=said):
            await api.list_page(0)
    assert api.requests == 0


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


async def test_https_is_verified_and_works_once_its_certificate_is_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    async with Wire([ok(PAGE)] * 3, tls=served) as wire:
        async with client(wire) as api:
            with pytest.raises(Retryable, match=r"cannot connect.*certificate") as info:
                await api.list_page(0)
        assert info.value.sent is False
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # as a user with a private CA would
        async with client(wire) as api:
            assert await api.list_page(0) == [] and await api.list_page(0) == []
    assert [r.headers["authorization"].startswith("Basic ") for r in wire.requests] == [True, True]
