"""How every kind of answer maps to a result or an error: pure mapping, plus exact malformed answers.

The table is :func:`pipeline.api.answers.interpret`'s (pure). Where a test needs one exact malformed
answer on the wire, a scripted server on 127.0.0.1 (:mod:`tests.api.wire`) gives it; everything else
talks to the real emulator.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import formatdate
from typing import Any

import pytest

from pipeline.api import FaceSearchClient
from pipeline.api.answers import Answer, ProtocolError, RemoteImage, interpret, parse_retry_after
from pipeline.errors import AuthError, Rejected, Retryable, Throttled
from tests.api.wire import Wire, http

BASE = "http://face.test/api/v2/face_search"
SECRET = "s3cr3t-do-not-leak"


@pytest.fixture
async def client() -> Any:
    async with FaceSearchClient(BASE, "key", SECRET) as c:
        yield c


@asynccontextmanager
async def client_of(wire: Wire) -> AsyncIterator[FaceSearchClient]:
    async with FaceSearchClient(wire.base_url, "key", SECRET) as client:
        yield client


def answer(status: int, body: Any, retry_after: str | None = None) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Answer(status, raw, retry_after)


def envelope(code: int, result: Any = None, message: str = "") -> dict[str, Any]:
    return {"result": result, "status_code": code, "message": message}


@pytest.mark.parametrize("http", [200, 400, 500])
def test_status_code_zero_returns_result(http: int) -> None:
    assert interpret("list", answer(http, envelope(0, [{"id": 1}]))) == [{"id": 1}]


@pytest.mark.parametrize("code", [1, 2, 3, 6])
@pytest.mark.parametrize("http", [200, 400, 413, 422, 500])
def test_refusal_codes_are_rejected_whatever_the_http_status(code: int, http: int) -> None:
    with pytest.raises(Rejected) as info:
        interpret("add", answer(http, envelope(code, message="no face")))
    assert (info.value.code, info.value.http_status) == (code, http)


@pytest.mark.parametrize("http", [200, 429, 503])
def test_code_4_is_throttled_with_retry_after_header(http: int) -> None:
    with pytest.raises(Throttled) as info:
        interpret("add", answer(http, envelope(4, message="Out of requests"), retry_after="7"))
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("http", [200, 401, 403])
def test_code_5_is_auth_error(http: int) -> None:
    with pytest.raises(AuthError):
        interpret("list", answer(http, envelope(5)))


@pytest.mark.parametrize("http", [401, 403])
def test_http_401_403_without_code_is_auth_error(http: int) -> None:
    with pytest.raises(AuthError):
        interpret("list", answer(http, b"<html>Forbidden</html>"))


def test_http_429_without_code_is_throttled() -> None:
    with pytest.raises(Throttled) as info:
        interpret("search", answer(429, b"Too Many Requests", retry_after="2.5"))
    assert info.value.retry_after == 2.5


def test_http_413_without_code_is_rejected_with_no_code() -> None:
    with pytest.raises(Rejected) as info:
        interpret("add", answer(413, b"<html>413 Request Entity Too Large</html>"))
    assert (info.value.code, info.value.http_status) == (None, 413)


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", {"error": "boom"}, b""])
@pytest.mark.parametrize("http", [500, 502, 503, 504])
def test_5xx_without_code_is_retryable_and_maybe_sent(http: int, body: Any) -> None:
    with pytest.raises(Retryable) as info:
        interpret("add", answer(http, body))
    assert info.value.sent is True


def test_json_4xx_without_code_rejects_the_item_for_per_item_calls() -> None:
    for op in ("add", "search", "update", "delete"):
        with pytest.raises(Rejected) as info:
            interpret(op, answer(400, {"error": "bad"}))
        assert (info.value.code, info.value.http_status) == (None, 400)


def test_4xx_on_a_listing_or_non_json_4xx_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        interpret("list", answer(400, {"error": "bad"}))
    with pytest.raises(ProtocolError, match="base_url"):
        interpret("add", answer(404, b"<html>Not Found</html>"))


def test_unknown_status_code_rejects_items_and_stops_listings() -> None:
    with pytest.raises(Rejected) as info:
        interpret("add", answer(200, envelope(42)))
    assert info.value.code == 42
    with pytest.raises(ProtocolError):
        interpret("list", answer(200, envelope(42)))


def test_http_408_is_retryable() -> None:
    with pytest.raises(Retryable):
        interpret("add", answer(408, b"Request Timeout"))


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=lambda: now) == pytest.approx(30.0)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=lambda: now) == 0.0


# -- exact malformed answers on the wire -----------------------------------------------------------


async def test_non_json_200_is_retryable() -> None:
    async with Wire([http(200, b"<html>hello</html>")]) as wire, client_of(wire) as client:
        with pytest.raises(Retryable, match="non-JSON"):
            await client.list_page(0)


async def test_json_200_without_status_code_is_retryable() -> None:
    async with Wire([http(200, {"result": []})]) as wire, client_of(wire) as client:
        with pytest.raises(Retryable, match="without status_code"):
            await client.list_page(0)


async def test_add_answer_without_any_id_is_a_protocol_error() -> None:
    async with Wire([http(200, envelope(0, {"url": "http://x/1.jpg"}))]) as wire, client_of(wire) as client:
        with pytest.raises(ProtocolError, match="no id"):
            await client.add(b"QUJD")


@pytest.mark.parametrize(("field", "value"), [("id", 7), ("_id", "65f0c0ffee"), ("image_id", 12)])
async def test_add_accepts_each_id_field_and_keeps_its_type(field: str, value: Any) -> None:
    script = [http(200, envelope(0, {field: value, "url": "http://x/1.jpg"}))]
    async with Wire(script) as wire, client_of(wire) as client:
        image = await client.add(b"QUJD")
    assert image == RemoteImage(id=value, url="http://x/1.jpg")
    assert type(image.id) is type(value)


async def test_http_date_retry_after_on_429_is_honoured() -> None:
    when = formatdate(time.time() + 90, usegmt=True)
    async with Wire([http(429, b"slow down", [("Retry-After", when)])]) as wire, client_of(wire) as client:
        with pytest.raises(Throttled) as info:
            await client.list_page(0)
    assert info.value.retry_after is not None and 85 <= info.value.retry_after <= 90
    assert client.throttled == 1


async def test_add_sends_base64_verbatim_with_basic_auth_header() -> None:
    async with Wire([http(200, envelope(0, {"id": 1}))]) as wire, client_of(wire) as client:
        await client.add(b"QUJD+/==", {"facesync_key": "a/b.jpg", "n": 1})
    [call] = wire.requests
    assert (call.method, call.target) == ("POST", "/api/v2/face_search/images")
    assert call.body == b'{"image":{"base64":"QUJD+/==","metadata":{"facesync_key":"a/b.jpg","n":1}}}'
    assert json.loads(call.body)["image"]["metadata"] == {"facesync_key": "a/b.jpg", "n": 1}
    assert call.headers["content-type"] == "application/json"
    assert call.headers["authorization"] == "Basic " + base64.b64encode(f"key:{SECRET}".encode()).decode()


@pytest.mark.parametrize("key", ["user", "encoding", "_id"])
async def test_reserved_metadata_keys_are_refused_before_any_request(
    client: FaceSearchClient, key: str
) -> None:
    with pytest.raises(ValueError, match="reserved"):
        await client.add(b"QUJD", {key: "x"})
    with pytest.raises(ValueError, match="reserved"):
        await client.update_metadata(1, {key: "x"})
    assert client.requests == 0


async def test_secret_never_appears_in_repr_or_errors(client: FaceSearchClient) -> None:
    assert SECRET not in repr(client)
    bad = FaceSearchClient("http://127.0.0.1:1/api", "key", SECRET, connect_timeout=2)
    try:
        with pytest.raises(Retryable) as info:
            await bad.list_page(0)
    finally:
        await bad.close()
    assert info.value.sent is False
    assert bad.requests == 0
    text = str(info.value) + repr(info.value)
    assert SECRET not in text
    assert base64.b64encode(f"key:{SECRET}".encode()).decode() not in text


def test_a_short_secret_is_hidden_only_where_it_stands_alone() -> None:
    from pipeline.api.transport import Credentials

    assert Credentials("k", "s").scrub("list: cannot connect: s") == "list: cannot connect: ***"
    assert Credentials("k", "sekret-123").scrub("a sekret-123 and xsekret-123y") == "a *** and x***y"
