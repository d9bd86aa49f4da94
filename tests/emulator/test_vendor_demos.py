"""The vendor page's Python demos, pointed at the emulator (with aiohttp), get the documented answers.

The page's snippets send a literal, truncated base64 (``iVBORw0KGgoAAAANSU...``), send update and
delete as POST, and send JSON as a plain string without a JSON Content-Type: each gets an answer
that says what is wrong rather than a crash or a silent success.
"""

from __future__ import annotations

import json

from pipeline.emulator import EmulatorThread
from tests.imagefactory import png_bytes

from .apiclient import Api, b64

DEMO_IMAGE_PAYLOAD = '{"image":{"base64":"iVBORw0KGgoAAAANSU..."}}'


async def test_list_demo_with_offset_100_limit_50_answers_the_101st_to_150th(
    api: Api, emulator: EmulatorThread
) -> None:
    empty = await api.call("GET", "/images?offset=%s&limit=%s" % (100, 50))  # noqa: UP031 - as on the page
    assert (empty.status, empty.body) == (200, {"result": [], "status_code": 0, "message": "Success"})
    ids = emulator.seed(160)
    page = await api.call("GET", "/images?offset=100&limit=50")
    assert [item["id"] for item in page.result] == ids[100:150]


async def test_search_demo_with_the_pages_truncated_base64_is_code_6(api: Api) -> None:
    reply = await api.call("POST", "/search", data=DEMO_IMAGE_PAYLOAD)
    assert (reply.status, reply.code) == (400, 6)


async def test_search_demo_with_a_real_png_answers_matches(api: Api) -> None:
    payload = json.dumps({"image": {"base64": b64(png_bytes(5))}})
    await api.call("POST", "/images", data=payload)
    reply = await api.call("POST", "/search", data=payload)
    assert (reply.code, [m["id"] for m in reply.result]) == (0, [1])


async def test_add_demo_with_the_pages_truncated_base64_is_code_6_and_stores_nothing(
    api: Api, emulator: EmulatorThread
) -> None:
    reply = await api.call("POST", "/images", data=DEMO_IMAGE_PAYLOAD)
    assert (reply.status, reply.code) == (400, 6)
    assert emulator.images() == []


async def test_add_demo_with_a_real_png_stores_it(api: Api) -> None:
    reply = await api.call("POST", "/images", data=json.dumps({"image": {"base64": b64(png_bytes(5))}}))
    assert (reply.status, reply.code, reply.result["id"]) == (200, 0, 1)


async def test_update_demo_sent_as_post_is_http_405_code_6(api: Api, emulator: EmulatorThread) -> None:
    emulator.seed(1)
    payload = '{"image_id":123456,"metadata":{"name":"example","label":"for bar"}}'
    for path in ("/images/<image_id>", "/images/123456", "/images/1"):
        reply = await api.call("POST", path, data=payload)
        assert (reply.status, reply.code) == (405, 6)
    assert emulator.images()[0].metadata == {}


async def test_update_demo_body_sent_as_put_updates_the_image(api: Api, emulator: EmulatorThread) -> None:
    emulator.configure(id_start=123456)
    emulator.seed(1)
    payload = '{"image_id":123456,"metadata":{"name":"example","label":"for bar"}}'
    reply = await api.call("PUT", "/images/123456", data=payload)
    assert (reply.status, reply.code) == (200, 0)
    assert emulator.images()[0].metadata == {"name": "example", "label": "for bar"}


async def test_delete_demo_sent_as_post_is_code_6_and_deletes_nothing(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.seed(2)
    reply = await api.call("POST", "/images", data='{"ids":[1,2]}')
    assert (reply.status, reply.code) == (400, 6)
    assert "DELETE" in reply.body["message"]
    assert len(emulator.images()) == 2


async def test_delete_demo_body_sent_as_delete_answers_result_none(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.seed(2)
    reply = await api.call("DELETE", "/images", data='{"ids":[1,2]}')
    assert reply.body == {"result": None, "status_code": 0, "message": "Success"}
    assert emulator.images() == []
