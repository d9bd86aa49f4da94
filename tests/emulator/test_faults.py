"""Throttling and injected faults: what the client sees on the wire, and what the emulator did."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from pipeline.emulator import Emulator, EmulatorSettings, EmulatorThread
from tests.imagefactory import jpeg_bytes

from .apiclient import Api, b64, basic_auth
from .fakeclock import FakeClock


async def test_rate_limit_answers_code_4_http_429_with_retry_after(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.configure(rate_limit=3, retry_after=2)
    replies = [await api.list() for _ in range(5)]
    assert [(r.status, r.code) for r in replies] == [(200, 0)] * 3 + [(429, 4)] * 2
    assert replies[-1].body["message"] == "Out of requests"
    assert replies[-1].headers["Retry-After"] == "2"
    assert "Retry-After" not in replies[0].headers
    assert [r.outcome for r in emulator.requests()] == ["ok"] * 3 + ["throttled"] * 2


async def test_rate_limit_answers_code_4_with_http_200_when_configured(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.configure(rate_limit=1, throttle_http_status=200)
    await api.list()
    reply = await api.list()
    assert (reply.status, reply.code) == (200, 4)
    assert "Retry-After" not in reply.headers


async def test_rate_limit_admits_again_once_the_window_has_slid_by_one_second(
    clocked_api: Api, clocked_emulator: Emulator, clock: FakeClock
) -> None:
    clocked_emulator.configure(rate_limit=2)
    assert [(await clocked_api.list()).code for _ in range(3)] == [0, 0, 4]
    clock.advance(0.5)
    assert (await clocked_api.list()).code == 4
    clock.advance(0.5)
    assert [(await clocked_api.list()).code for _ in range(3)] == [0, 0, 4]


async def test_a_rate_below_one_admits_one_request_per_one_over_rate_seconds(
    clocked_api: Api, clocked_emulator: Emulator, clock: FakeClock
) -> None:
    clocked_emulator.configure(rate_limit=0.5)
    assert [(await clocked_api.list()).code for _ in range(2)] == [0, 4]
    clock.advance(1.5)
    assert (await clocked_api.list()).code == 4
    clock.advance(0.5)
    assert [(await clocked_api.list()).code for _ in range(2)] == [0, 4]


async def test_quota_allows_n_requests_then_code_4_until_set_again(
    api: Api, emulator: EmulatorThread
) -> None:
    await api.list()
    emulator.configure(quota=2, retry_after=0.5)
    replies = [await api.list() for _ in range(4)]
    assert [(r.status, r.code) for r in replies] == [(200, 0), (200, 0), (429, 4), (429, 4)]
    assert replies[-1].headers["Retry-After"] == "0.5"
    emulator.configure(quota=1)
    assert [(await api.list()).code for _ in range(2)] == [0, 4]
    emulator.configure(quota=None)
    assert (await api.list()).code == 0


async def test_requests_with_bad_credentials_do_not_spend_the_quota(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.configure(quota=1)
    assert (await api.call("GET", "/images", auth=basic_auth("demo-key", "bad"))).code == 5
    assert (await api.list()).code == 0


async def test_throttle_share_answers_that_share_of_calls_code_4_without_spending_the_quota(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.configure(throttle_share=0.5, retry_after=2, seed=7)
    replies = [await api.list() for _ in range(40)]
    throttled = [r for r in replies if r.code == 4]
    assert 8 <= len(throttled) <= 32
    assert {(r.status, r.headers["Retry-After"]) for r in throttled} == {(429, "2")}
    assert {r.code for r in replies} == {0, 4}
    assert [r.outcome for r in emulator.requests()].count("throttled") == len(throttled)
    emulator.configure(throttle_share=1.0, throttle_http_status=200, quota=2)
    assert [(r.status, r.code) for r in [await api.list() for _ in range(3)]] == [(200, 4)] * 3
    emulator.configure(throttle_share=0.0)
    # The storm's code-4 answers spent none of the quota set before it.
    assert [(await api.list()).code for _ in range(3)] == [0, 0, 4]


@pytest.mark.parametrize("status", [503, 502])
async def test_fail_before_answers_fail_status_and_stores_nothing(
    api: Api, emulator: EmulatorThread, status: int
) -> None:
    emulator.configure(fail_before=1.0, fail_status=status)
    reply = await api.add(jpeg_bytes(1))
    assert reply.status == status
    assert reply.body == {"result": None, "status_code": None, "message": reply.body["message"]}
    assert emulator.images() == []
    record = emulator.requests()[-1]
    assert (record.http_status, record.status_code, record.outcome) == (status, None, "fail_before")


async def test_fail_body_html_answers_a_proxy_page_not_json(api: Api, emulator: EmulatorThread) -> None:
    emulator.configure(fail_before=1.0, fail_status=502, fail_body_html=True)
    reply = await api.list()
    assert (reply.status, reply.body, reply.headers["Content-Type"].split(";")[0]) == (502, None, "text/html")
    assert "502 Bad Gateway" in reply.text


async def test_store_then_fail_stores_the_image_and_answers_503(api: Api, emulator: EmulatorThread) -> None:
    emulator.configure(store_then_fail=1.0)
    reply = await api.add(jpeg_bytes(1), {"facesync_token": "t1"})
    assert reply.status == 503
    [stored] = emulator.images()
    assert stored.metadata == {"facesync_token": "t1"}
    assert emulator.requests()[-1].outcome == "stored_then_fail"


async def test_store_then_drop_stores_the_image_and_the_client_sees_a_disconnect(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.configure(store_then_drop=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.add(jpeg_bytes(1), {"facesync_token": "t2"})
    assert [i.metadata for i in emulator.images()] == [{"facesync_token": "t2"}]
    record = emulator.requests()[-1]
    assert (record.http_status, record.outcome) == (None, "stored_then_drop")
    emulator.configure(store_then_drop=0.0)
    assert (await api.list()).code == 0


async def test_stall_never_answers_so_the_client_timeout_fires(api: Api, emulator: EmulatorThread) -> None:
    emulator.configure(stall=1.0)
    with pytest.raises(TimeoutError):
        await api.add(jpeg_bytes(1), total_timeout=0.3)
    assert emulator.images() == []
    assert emulator.requests()[-1].outcome == "stalled"


async def test_stop_releases_stalled_calls_at_once() -> None:
    emu = Emulator(settings=EmulatorSettings(stall=1.0))
    base = await emu.start()
    async with aiohttp.ClientSession() as session:
        call = asyncio.ensure_future(session.get(f"{base}/images", headers={"Authorization": "x"}))
        [record] = await asyncio.wait_for(emu.wait_for_requests(1), timeout=5)
        assert record.outcome == "stalled"
        await asyncio.wait_for(emu.stop(), timeout=5)
        with pytest.raises(aiohttp.ClientError):
            await call


async def test_faults_and_auth_leave_control_and_file_routes_alone(
    api: Api, emulator: EmulatorThread
) -> None:
    url = (await api.add(jpeg_bytes(1))).result["url"]
    emulator.configure(fail_before=1.0, quota=1, api_secret="changed")
    assert (await api.control("GET", "/settings")).body["fail_before"] == 1.0
    async with api.session.get(url) as resp:
        assert resp.status == 200
    assert len(emulator.requests()) == 1


async def test_seeded_rng_makes_fault_choices_repeatable(api: Api, emulator: EmulatorThread) -> None:
    async def pattern() -> list[int]:
        emulator.configure(seed=42, fail_before=0.5)
        return [(await api.list()).status for _ in range(20)]

    first = await pattern()
    emulator.reset()
    assert await pattern() == first
    assert set(first) == {200, 503}


async def test_delay_holds_each_call_for_a_random_time_up_to_delay_seconds(
    clocked_api: Api, clocked_emulator: Emulator, clock: FakeClock
) -> None:
    clocked_emulator.configure(delay=0.05, seed=3)
    assert [(await clocked_api.list()).code for _ in range(5)] == [0] * 5
    assert len(clock.slept) == 5
    assert all(0.0 <= seconds <= 0.05 for seconds in clock.slept)
    assert len(set(clock.slept)) == 5


async def test_bandwidth_reads_request_bodies_no_faster_than_the_uplink_allows(
    clocked_api: Api, clocked_emulator: Emulator, clock: FakeClock
) -> None:
    clocked_emulator.configure(bandwidth_mbit=8)  # one megabyte a second
    bodies = [f'{{"image":{{"base64":"{b64(jpeg_bytes(n, (300, 300)))}"}}}}'.encode() for n in (1, 2)]
    for body in bodies:
        assert (await clocked_api.call("POST", "/images", data=body)).code == 0
    assert sum(clock.slept) == pytest.approx(sum(len(b) for b in bodies) / 1e6)
    clocked_emulator.configure(bandwidth_mbit=None)
    before = len(clock.slept)
    assert (await clocked_api.call("POST", "/images", data=bodies[0])).code == 0
    assert len(clock.slept) == before  # as fast as it arrives


async def test_request_log_records_each_api_call(api: Api, emulator: EmulatorThread) -> None:
    await api.add(jpeg_bytes(1))
    await api.list(0, 10)
    await api.delete([7])
    records = emulator.requests()
    assert [(r.method, r.path, r.query, r.http_status, r.status_code, r.outcome) for r in records] == [
        ("POST", "/api/v2/face_search/images", "", 200, 0, "ok"),
        ("GET", "/api/v2/face_search/images", "offset=0&limit=10", 200, 0, "ok"),
        ("DELETE", "/api/v2/face_search/images", "", 200, 0, "ok"),
    ]
    assert records[0].time <= records[1].time <= records[2].time
