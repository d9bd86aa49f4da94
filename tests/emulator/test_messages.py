"""Every emulator message says what is wrong in words: no Python reprs, values shown as JSON."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.emulator import EmulatorThread
from tests.imagefactory import jpeg_bytes, png_bytes, truncated_jpeg_bytes

from .apiclient import Api

BROKEN_IMAGES = [
    pytest.param(b"this is not a picture\n", "the bytes are not an image in any known format", id="text"),
    pytest.param(b"GIF89a nope", "the bytes are not an image in any known format", id="gif-magic-only"),
    pytest.param(truncated_jpeg_bytes(1, (256, 256)), "the JPEG data is truncated", id="truncated-jpeg"),
    pytest.param(jpeg_bytes(1, (256, 256))[:200], "the image data is truncated", id="jpeg-header-only"),
    pytest.param(png_bytes(1, (256, 256))[:-600], "the PNG data is truncated", id="truncated-png"),
    pytest.param(b"BM" + bytes(40), "the image header is damaged or of an unsupported kind", id="bad-bmp"),
]


@pytest.mark.parametrize("call", ["add", "search"])
@pytest.mark.parametrize(("data", "what"), BROKEN_IMAGES)
async def test_an_image_that_cannot_be_decoded_is_described_in_words(
    api: Api, emulator: EmulatorThread, call: str, data: bytes, what: str
) -> None:
    reply = await (api.add(data) if call == "add" else api.search(data))
    assert (reply.status, reply.code, reply.body["message"]) == (400, 3, f"Incorrect image format: {what}")
    assert emulator.images() == []


async def test_refusals_show_the_refused_values_as_json(api: Api) -> None:
    image_id = (await api.add(jpeg_bytes(1))).result["id"]
    replies = [
        await api.list("x", 10),
        await api.add(jpeg_bytes(2), {"user": "u", "_id": 1}),
        await api.call("PUT", f"/images/{image_id}", json={"image_id": "2", "metadata": {}}),
    ]
    assert [r.body["message"] for r in replies] == [
        'Incorrect format type: offset must be a whole number, got "x"',
        'Incorrect format type: metadata keys are reserved: "_id", "user"',
        'Incorrect format type: image_id "2" does not match the path',
    ]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"list_metadata": "yes"}, 'list_metadata: expected true or false, got "yes"'),
        ({"page_cap": True}, "page_cap: expected a number, got true"),
        ({"delete_unknown": None}, "delete_unknown: may not be null"),
        ({"delete_unknown": "explode"}, 'delete_unknown: expected one of "ignore", "fail", got "explode"'),
        ({"throttle_http_status": 500}, "throttle_http_status: expected one of 200, 429, got 500"),
        ({"fail_before": [1]}, "fail_before: expected a number, got [1]"),
        ({"page_cap": float("inf")}, "page_cap: expected a finite number, got Infinity"),
        ({"rate_limit": float("nan")}, "rate_limit: expected a finite number, got NaN"),
    ],
)
async def test_settings_errors_show_the_refused_values_as_json(
    api: Api, changes: dict[str, Any], error: str
) -> None:
    reply = await api.control("POST", "/settings", changes)
    assert (reply.status, reply.body) == (400, {"error": error})


async def test_an_unknown_setting_is_named_as_json(api: Api) -> None:
    reply = await api.control("POST", "/settings", {"nope": 1})
    assert reply.body["error"].startswith('unknown setting "nope" (known: add_id_field, api_key, ')


def test_configure_names_a_value_json_cannot_show_by_its_type(emulator: EmulatorThread) -> None:
    with pytest.raises(ValueError) as refused:
        emulator.configure(rate_limit=object())
    assert str(refused.value) == "rate_limit: expected a number, got a value of type object"
