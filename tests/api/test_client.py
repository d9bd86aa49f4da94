"""The client against the real emulator over 127.0.0.1: every call, and every misbehaviour it can stage."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pipeline.api import FaceSearchClient, Limiter, RemoteImage, RetryPolicy
from pipeline.config import ApiConfig, LimitsConfig
from pipeline.emulator import EmulatorThread
from pipeline.errors import AuthError, ConfigError, QuotaSpent, Rejected, Retryable
from tests.imagefactory import jpeg_bytes

KEY, SECRET = "demo-key", "demo-secret"
FAST = RetryPolicy(attempts=5, base=0.01, cap=0.05)


@pytest.fixture
async def client(emulator_url: str) -> AsyncIterator[FaceSearchClient]:
    async with FaceSearchClient(emulator_url, KEY, SECRET, retry=FAST, limiter=Limiter(rate=None)) as c:
        yield c


def api_calls(emulator: EmulatorThread, method: str | None = None) -> list[Any]:
    return [r for r in emulator.requests() if method is None or r.method == method]


async def test_each_call_round_trips_through_the_emulator(
    emulator: EmulatorThread, client: FaceSearchClient
) -> None:
    data = jpeg_bytes(1)
    added = await client.add_image(data, {"facesync_key": "a.jpg"})
    assert isinstance(added.id, int) and added.url
    [stored] = emulator.images()
    assert stored.id == added.id
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.metadata == {"facesync_key": "a.jpg"}

    [listed] = await client.list_page(0)
    assert listed.id == added.id and listed.metadata == {"facesync_key": "a.jpg"}

    matches = await client.search(data)
    assert [m.id for m in matches] == [added.id]

    await client.update_metadata(added.id, {"facesync_key": "b.jpg"})
    assert emulator.images()[0].metadata == {"facesync_key": "b.jpg"}

    await client.delete([added.id])
    assert emulator.images() == []
    assert await client.list_page(0) == []
    assert client.requests == 6


async def test_add_without_metadata_is_accepted(emulator: EmulatorThread, client: FaceSearchClient) -> None:
    image = await client.add_image(jpeg_bytes(2))
    assert [i.id for i in emulator.images()] == [image.id]


@pytest.mark.parametrize("field", ["id", "_id", "image_id"])
async def test_add_reads_the_id_under_each_field(
    emulator: EmulatorThread, client: FaceSearchClient, field: str
) -> None:
    emulator.configure(add_id_field=field)
    image = await client.add_image(jpeg_bytes(3))
    assert [i.id for i in emulator.images()] == [image.id]


async def test_string_ids_round_trip_exactly(emulator: EmulatorThread, client: FaceSearchClient) -> None:
    emulator.configure(id_kind="str")
    added = await client.add_image(jpeg_bytes(4), {"n": 1})
    assert isinstance(added.id, str)
    assert [i.id for i in await client.list_page(0)] == [added.id]
    await client.update_metadata(added.id, {"n": 2})
    assert emulator.images()[0].metadata == {"n": 2}
    await client.delete([added.id])
    assert emulator.images() == []


async def test_wrong_secret_is_auth_error_as_code_5_and_as_401(
    emulator: EmulatorThread, emulator_url: str
) -> None:
    async with FaceSearchClient(emulator_url, KEY, "wrong-secret", retry=FAST) as bad:
        with pytest.raises(AuthError) as info:
            await bad.list_page(0)
        assert "wrong-secret" not in str(info.value)
        emulator.configure(auth_http_status=200)
        with pytest.raises(AuthError):
            await bad.add_image(jpeg_bytes(5))
    assert len(api_calls(emulator)) == 2  # never retried


class ServiceClock:
    """The limiter's clock and sleep, moved by hand: once the service has throttled, it recovers (its
    ``throttle_share`` drops to 0) while the client waits, so no test waits for real time to pass."""

    def __init__(self, emulator: EmulatorThread) -> None:
        self.emulator = emulator
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        if any(r.outcome == "throttled" for r in self.emulator.requests()):
            self.slept.append(seconds)
            self.emulator.configure(throttle_share=0.0)
        await asyncio.sleep(0)

    def limiter(self) -> Limiter:
        return Limiter(rate=None, clock=self.clock, sleep=self.sleep)


@pytest.mark.parametrize("http_status", [429, 200], ids=["http-429", "code-4-on-http-200"])
async def test_a_throttled_call_waits_its_retry_after_then_is_sent_again(
    emulator: EmulatorThread, emulator_url: str, http_status: int
) -> None:
    service = ServiceClock(emulator)
    async with FaceSearchClient(emulator_url, KEY, SECRET, limiter=service.limiter()) as client:
        await client.list_page(0)
        emulator.configure(throttle_share=1.0, retry_after=1.0, throttle_http_status=http_status)
        await client.list_page(0)  # throttled once, then sent again once the gate reopens

    assert [r.outcome for r in api_calls(emulator)] == ["ok", "throttled", "ok"]
    assert sum(service.slept) >= 1.0  # Retry-After: 1 was waited out after the throttle
    assert client.throttled == 1 and client.requests == 3


async def test_spent_quota_raises_quota_spent_without_retrying(
    emulator: EmulatorThread, emulator_url: str
) -> None:
    emulator.configure(quota=1)
    limiter = Limiter(rate=None, quota_wait=0)
    async with FaceSearchClient(emulator_url, KEY, SECRET, limiter=limiter, retry=FAST) as client:
        await client.list_page(0)
        with pytest.raises(QuotaSpent):
            await client.list_page(0)
        with pytest.raises(QuotaSpent):
            await client.add_image(jpeg_bytes(6))
    assert limiter.spent
    assert len(api_calls(emulator)) == 2


async def test_capped_pages_still_yield_every_image_exactly_once(
    emulator: EmulatorThread, client: FaceSearchClient
) -> None:
    ids = emulator.seed(95)
    emulator.configure(page_cap=20)
    got = [image.id async for image in client.iter_images(page_size=100)]
    assert sorted(got) == sorted(ids)
    assert len(got) == len(set(got))
    queries = [r.query for r in api_calls(emulator, "GET")]
    # Pages of 20 (the cap), each after the first starting 2 early (the overlap that notices shifts),
    # until a page holds nothing new.
    assert queries == [f"offset={o}&limit=100" for o in (0, 18, 36, 54, 72, 90, 93)]


async def test_listing_items_without_metadata_have_none(
    emulator: EmulatorThread, client: FaceSearchClient
) -> None:
    emulator.seed(3, {"k": "v"})
    emulator.configure(list_metadata=False)
    assert [i.metadata for i in await client.list_page(0)] == [None, None, None]


async def test_delete_sends_exactly_one_call_whatever_the_number_of_ids(
    emulator: EmulatorThread, client: FaceSearchClient
) -> None:
    ids = emulator.seed(12)
    await client.delete(ids)
    await client.delete([])
    assert emulator.images() == []
    assert len(api_calls(emulator, "DELETE")) == 1


async def test_delete_over_the_cap_is_rejected_whole(
    emulator: EmulatorThread, client: FaceSearchClient
) -> None:
    ids = emulator.seed(6)
    emulator.configure(delete_cap=5)
    with pytest.raises(Rejected) as info:
        await client.delete(ids)
    assert (info.value.code, info.value.http_status) == (6, 400)
    assert len(emulator.images()) == 6


async def test_store_then_fail_is_retried_and_the_duplicate_stays_visible(
    emulator: EmulatorThread, emulator_url: str
) -> None:
    emulator.configure(store_then_fail=1.0)

    async def heal(seconds: float) -> None:
        emulator.configure(store_then_fail=0.0)

    retry = RetryPolicy(attempts=3, base=0.01, cap=0.01, sleep=heal)
    async with FaceSearchClient(emulator_url, KEY, SECRET, retry=retry) as client:
        image = await client.add_image(jpeg_bytes(7))
    stored = emulator.images()
    assert len(stored) == 2  # no idempotency: the lost answer's copy is there for reconcile to find
    assert image.id in {s.id for s in stored}
    assert [r.outcome for r in api_calls(emulator)] == ["stored_then_fail", "ok"]


async def test_dropped_connection_after_store_is_retryable_and_maybe_sent(
    emulator: EmulatorThread, emulator_url: str
) -> None:
    emulator.configure(store_then_drop=1.0)
    async with FaceSearchClient(emulator_url, KEY, SECRET) as client:
        with pytest.raises(Retryable) as info:
            await client.add_image(jpeg_bytes(8))
    assert info.value.sent is True
    assert len(emulator.images()) == 1


async def test_stalled_answer_times_out_as_retryable(emulator: EmulatorThread, emulator_url: str) -> None:
    emulator.configure(stall=1.0, stall_seconds=3.0)
    async with FaceSearchClient(emulator_url, KEY, SECRET, timeout=0.3) as client:
        with pytest.raises(Retryable, match="timed out") as info:
            await client.list_page(0)
    assert info.value.sent is True


async def test_5xx_before_the_call_is_retried_to_success(emulator: EmulatorThread, emulator_url: str) -> None:
    emulator.configure(fail_before=1.0, fail_status=503)
    calls = 0

    async def heal_after_two(seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            emulator.configure(fail_before=0.0)

    retry = RetryPolicy(attempts=5, base=0.01, cap=0.01, sleep=heal_after_two)
    async with FaceSearchClient(emulator_url, KEY, SECRET, retry=retry) as client:
        image = await client.add_image(jpeg_bytes(9))
    assert [r.outcome for r in api_calls(emulator)] == ["fail_before", "fail_before", "ok"]
    assert [i.id for i in emulator.images()] == [image.id]


async def test_5xx_is_reraised_when_the_retry_budget_is_spent(
    emulator: EmulatorThread, emulator_url: str
) -> None:
    emulator.configure(fail_before=1.0, fail_status=500)
    async with FaceSearchClient(emulator_url, KEY, SECRET, retry=RetryPolicy(3, 0.001, 0.001)) as client:
        with pytest.raises(Retryable):
            await client.list_page(0)
    assert len(api_calls(emulator)) == 3


async def test_proxy_html_502_is_retryable(emulator: EmulatorThread, emulator_url: str) -> None:
    emulator.configure(fail_before=1.0, fail_status=502, fail_body_html=True)
    async with FaceSearchClient(emulator_url, KEY, SECRET) as client:
        with pytest.raises(Retryable, match="non-JSON") as info:
            await client.search(jpeg_bytes(10))
    assert info.value.sent is True


async def test_oversized_body_is_rejected_with_413(
    emulator: EmulatorThread, client: FaceSearchClient
) -> None:
    emulator.configure(max_body_bytes=1000)
    with pytest.raises(Rejected) as info:
        await client.add_image(jpeg_bytes(11, size=(256, 256)))
    assert info.value.http_status == 413
    assert emulator.images() == []


async def test_not_an_image_is_rejected_not_retried(
    emulator: EmulatorThread, client: FaceSearchClient
) -> None:
    with pytest.raises(Rejected) as info:
        await client.add_image(b"this is not a picture")
    assert info.value.code in {1, 3, 6}
    assert len(api_calls(emulator)) == 1


async def test_unknown_id_update_is_rejected(emulator: EmulatorThread, client: FaceSearchClient) -> None:
    with pytest.raises(Rejected) as info:
        await client.update_metadata(424242, {"k": "v"})
    assert info.value.http_status == 404


async def test_from_config_uses_the_override_url_and_limits(
    emulator: EmulatorThread, emulator_url: str
) -> None:
    api = ApiConfig(api_key=KEY, api_secret=SECRET, page_size=7, delete_batch=3)
    limits = LimitsConfig(concurrency=2, rate=50, retries=2)
    async with FaceSearchClient.from_config(api, limits, base_url=emulator_url) as client:
        assert client.page_size == 7
        assert client.retry is not None and client.retry.attempts == 3
        assert client.limiter is not None and client.limiter.current_rate == 50
        assert await client.list_page(0) == []
    with pytest.raises(ConfigError):
        FaceSearchClient.from_config(api, limits)


def test_a_client_built_in_code_has_the_defaults_an_empty_config_has() -> None:
    api, limits = ApiConfig(), LimitsConfig()
    client = FaceSearchClient("http://face.test", KEY, SECRET)
    assert client.page_size == api.page_size
    assert (client.downloads.timeout.total, client.downloads.timeout.sock_connect) == (
        api.timeout,
        api.connect_timeout,
    )
    assert RetryPolicy().attempts == limits.retries + 1
    assert (RetryPolicy().base, RetryPolicy().cap) == (limits.backoff_base, limits.backoff_max)


async def test_remote_image_is_a_plain_value() -> None:
    assert RemoteImage(id="a", url=None) == RemoteImage("a")
