"""The five calls over real sockets: happy paths, the documented error codes, ids, caps."""

from __future__ import annotations

import hashlib
import re

import pytest

from pipeline.emulator import EmulatorThread
from tests.imagefactory import jpeg_bytes, png_bytes, truncated_jpeg_bytes

from .apiclient import Api, b64, basic_auth


async def test_add_stores_image_and_answers_id_url_metadata(api: Api, emulator: EmulatorThread) -> None:
    data = jpeg_bytes(1)
    reply = await api.add(data, {"name": "a", "n": 1})
    assert (reply.status, reply.code, reply.body["message"]) == (200, 0, "Success")
    assert reply.result == {"id": 1, "url": f"{api.base_url}/files/1", "metadata": {"name": "a", "n": 1}}
    [stored] = emulator.images()
    assert (stored.id, stored.size, stored.metadata) == (1, len(data), {"name": "a", "n": 1})
    assert stored.sha256 == hashlib.sha256(data).hexdigest()


async def test_add_without_metadata_stores_empty_metadata(api: Api) -> None:
    reply = await api.add(png_bytes(2))
    assert reply.code == 0 and reply.result["metadata"] == {}


async def test_file_url_serves_the_stored_bytes_without_auth(api: Api) -> None:
    data = jpeg_bytes(3)
    url = (await api.add(data)).result["url"]
    async with api.session.get(url) as resp:
        assert (resp.status, resp.content_type, await resp.read()) == (200, "image/jpeg", data)


async def test_int_ids_are_sequential_and_never_reused_after_delete(api: Api) -> None:
    ids = [(await api.add(jpeg_bytes(i))).result["id"] for i in range(3)]
    assert ids == [1, 2, 3]
    assert (await api.delete([3])).code == 0
    assert (await api.add(jpeg_bytes(9))).result["id"] == 4


@pytest.mark.parametrize("field", ["_id", "image_id"])
async def test_add_id_field_setting_names_the_id_field(
    api: Api, emulator: EmulatorThread, field: str
) -> None:
    emulator.configure(add_id_field=field)
    result = (await api.add(jpeg_bytes(1))).result
    assert result[field] == 1 and "id" not in result


async def test_string_ids_are_24_hex_and_work_for_list_update_delete(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.configure(id_kind="str")
    first = (await api.add(jpeg_bytes(1))).result["id"]
    second = (await api.add(jpeg_bytes(2))).result["id"]
    assert all(isinstance(i, str) and re.fullmatch(r"[0-9a-f]{24}", i) for i in (first, second))
    assert first != second
    assert [item["id"] for item in (await api.list()).result] == [first, second]
    assert (await api.update(first, {"k": "v"})).code == 0
    assert (await api.delete([first])).code == 0
    assert [i.id for i in emulator.images()] == [second]


async def test_id_start_none_starts_ints_at_a_random_large_number(api: Api, emulator: EmulatorThread) -> None:
    emulator.configure(id_start=None, seed=7)
    first = (await api.add(jpeg_bytes(1))).result["id"]
    second = (await api.add(jpeg_bytes(2))).result["id"]
    assert first >= 10**11 and second == first + 1


@pytest.mark.parametrize("key", ["user", "encoding", "_id"])
async def test_add_with_reserved_metadata_key_is_code_6_http_400(
    api: Api, emulator: EmulatorThread, key: str
) -> None:
    reply = await api.add(jpeg_bytes(1), {key: "x"})
    assert (reply.status, reply.code) == (400, 6)
    assert emulator.images() == []


@pytest.mark.parametrize("encoded", ["", "   "])
async def test_add_empty_image_is_code_1(api: Api, encoded: str) -> None:
    reply = await api.call("POST", "/images", json={"image": {"base64": encoded}})
    assert (reply.status, reply.code, reply.body["message"]) == (
        400,
        1,
        "The photo does not contain content: image.base64 is empty",
    )


async def test_add_invalid_base64_is_code_6(api: Api) -> None:
    reply = await api.call("POST", "/images", json={"image": {"base64": "not base64!!"}})
    assert (reply.status, reply.code) == (400, 6)


async def test_add_base64_with_line_breaks_is_accepted(api: Api) -> None:
    import base64

    wrapped = base64.encodebytes(jpeg_bytes(1)).decode()
    assert (await api.call("POST", "/images", json={"image": {"base64": wrapped}})).code == 0


@pytest.mark.parametrize(
    "data", [b"this is not a picture\n", truncated_jpeg_bytes(1, (256, 256))], ids=["text", "truncated-jpeg"]
)
async def test_add_bytes_pillow_cannot_decode_is_code_3(
    api: Api, emulator: EmulatorThread, data: bytes
) -> None:
    reply = await api.add(data)
    assert (reply.status, reply.code) == (400, 3)
    assert reply.body["message"].startswith("Incorrect image format")
    assert emulator.images() == []


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '{"image": "x"}', '{"image": {"base64": 5}}'])
async def test_add_malformed_body_is_code_6(api: Api, body: str) -> None:
    reply = await api.call("POST", "/images", data=body)
    assert (reply.status, reply.code) == (400, 6)


async def test_body_over_max_body_bytes_is_http_413_code_6(api: Api, emulator: EmulatorThread) -> None:
    emulator.configure(max_body_bytes=10_000)
    reply = await api.add(jpeg_bytes(1, (512, 512)))
    assert (reply.status, reply.code) == (413, 6)
    assert (await api.add(jpeg_bytes(1))).code == 0


async def test_list_pages_in_insertion_order_and_ends_with_an_empty_page(api: Api) -> None:
    for i in range(5):
        await api.add(jpeg_bytes(i), {"i": i})
    first, second, end = (await api.list(0, 3)), (await api.list(3, 3)), (await api.list(6, 3))
    assert [item["id"] for item in first.result + second.result] == [1, 2, 3, 4, 5]
    assert first.result[0] == {"id": 1, "url": f"{api.base_url}/files/1", "metadata": {"i": 0}}
    assert (end.status, end.code, end.result) == (200, 0, [])


async def test_list_without_metadata_when_list_metadata_is_false(api: Api, emulator: EmulatorThread) -> None:
    await api.add(jpeg_bytes(1), {"i": 1})
    emulator.configure(list_metadata=False)
    assert (await api.list()).result == [{"id": 1, "url": f"{api.base_url}/files/1"}]


async def test_list_limit_is_capped_by_page_cap(api: Api, emulator: EmulatorThread) -> None:
    emulator.seed(10)
    emulator.configure(page_cap=4)
    assert [item["id"] for item in (await api.list(0, 100)).result] == [1, 2, 3, 4]
    assert [item["id"] for item in (await api.list(8, 100)).result] == [9, 10]


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), ("x", 10), (0, 0), (0, "ten"), (0, -5)])
async def test_list_bad_offset_or_limit_is_http_400_code_6(api: Api, offset: object, limit: object) -> None:
    reply = await api.list(offset, limit)  # type: ignore[arg-type]
    assert (reply.status, reply.code) == (400, 6)


async def test_search_finds_a_near_duplicate_best_first(api: Api) -> None:
    target = (await api.add(jpeg_bytes(1, (64, 64)))).result["id"]
    await api.add(jpeg_bytes(2, (64, 64)))
    reply = await api.search(png_bytes(1, (200, 200)))
    assert reply.code == 0
    assert [m["id"] for m in reply.result] == [target]
    assert reply.result[0]["url"].endswith(f"/files/{target}") and 0.8 < reply.result[0]["score"] <= 1.0


async def test_search_of_an_unrelated_image_finds_nothing(api: Api) -> None:
    for i in range(5):
        await api.add(jpeg_bytes(i))
    reply = await api.search(jpeg_bytes(99))
    assert (reply.code, reply.result) == (0, [])


async def test_search_with_undecodable_image_is_code_3(api: Api) -> None:
    reply = await api.call("POST", "/search", json={"image": {"base64": b64(b"GIF89a nope")}})
    assert (reply.status, reply.code) == (400, 3)


async def test_update_replaces_metadata(api: Api, emulator: EmulatorThread) -> None:
    image_id = (await api.add(jpeg_bytes(1), {"a": 1, "b": 2})).result["id"]
    reply = await api.update(image_id, {"c": 3})
    assert (reply.status, reply.code, reply.result["metadata"]) == (200, 0, {"c": 3})
    assert emulator.images()[0].metadata == {"c": 3}


async def test_update_matches_an_int_id_by_its_decimal_path(api: Api, emulator: EmulatorThread) -> None:
    await api.add(jpeg_bytes(1))
    reply = await api.call("PUT", "/images/1", json={"metadata": {"x": "y"}})
    assert reply.code == 0 and emulator.images()[0].metadata == {"x": "y"}


async def test_update_unknown_id_is_http_404_code_6(api: Api) -> None:
    reply = await api.update(12345, {"a": 1})
    assert (reply.status, reply.code) == (404, 6)
    assert "image not found" in reply.body["message"]


@pytest.mark.parametrize("metadata", [{"user": "x"}, "text", None])
async def test_update_with_reserved_or_malformed_metadata_is_code_6(api: Api, metadata: object) -> None:
    image_id = (await api.add(jpeg_bytes(1))).result["id"]
    reply = await api.update(image_id, metadata)
    assert (reply.status, reply.code) == (400, 6)


async def test_delete_removes_the_ids_and_ignores_unknown_ones(api: Api, emulator: EmulatorThread) -> None:
    for i in range(3):
        await api.add(jpeg_bytes(i))
    reply = await api.delete([1, "3", 999])
    assert (reply.status, reply.code, reply.result) == (200, 0, None)
    assert [i.id for i in emulator.images()] == [2]


async def test_delete_with_unknown_ids_fails_whole_call_when_set_to_fail(
    api: Api, emulator: EmulatorThread
) -> None:
    await api.add(jpeg_bytes(1))
    emulator.configure(delete_unknown="fail")
    reply = await api.delete([1, 999])
    assert (reply.status, reply.code) == (404, 6)
    assert [i.id for i in emulator.images()] == [1]


async def test_delete_over_delete_cap_is_code_6_and_deletes_nothing(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.seed(5)
    emulator.configure(delete_cap=3)
    reply = await api.delete([1, 2, 3, 4])
    assert (reply.status, reply.code) == (400, 6)
    assert len(emulator.images()) == 5
    assert (await api.delete([1, 2, 3])).code == 0


@pytest.mark.parametrize("ids", [None, "1,2", [1.5], [True]])
async def test_delete_with_malformed_ids_is_code_6(api: Api, ids: object) -> None:
    reply = await api.call("DELETE", "/images", json={"ids": ids})
    assert (reply.status, reply.code) == (400, 6)


@pytest.mark.parametrize(
    "auth",
    [basic_auth("demo-key", "wrong"), basic_auth("other", "demo-secret"), None, "Bearer x", "Basic !!"],
)
async def test_bad_or_missing_credentials_are_code_5_http_401(
    api: Api, emulator: EmulatorThread, auth: str | None
) -> None:
    reply = await api.call("GET", "/images?offset=0&limit=1", auth=auth)
    assert (reply.status, reply.code, reply.body["message"]) == (401, 5, "Incorrect api_key or api_secret")
    assert emulator.requests()[-1].outcome == "auth"


async def test_bad_credentials_answer_http_200_when_auth_http_status_is_200(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.configure(auth_http_status=200)
    reply = await api.add(jpeg_bytes(1), auth=basic_auth("demo-key", "wrong"))
    assert (reply.status, reply.code) == (200, 5)
    assert emulator.images() == []


async def test_configured_credentials_are_the_ones_checked(api: Api, emulator: EmulatorThread) -> None:
    emulator.configure(api_key="k", api_secret="s")
    assert (await api.list()).code == 5
    assert (await api.call("GET", "/images", auth=basic_auth("k", "s"))).code == 0


async def test_unknown_call_is_http_404_code_6(api: Api) -> None:
    reply = await api.call("GET", "/nothing")
    assert (reply.status, reply.code) == (404, 6)
