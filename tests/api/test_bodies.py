"""The add body (pipeline/api/bodies.py): the caller's base64 checked, the client's own not scanned again —
the same bytes either way."""

from __future__ import annotations

import json

import pybase64
import pytest

from pipeline.api.bodies import add_body, encoded_add_body


@pytest.mark.parametrize("metadata", [None, {"facesync_key": "a/é.jpg", "n": 1}])
def test_the_body_of_the_clients_own_base64_is_the_checked_body(metadata: dict[str, object] | None) -> None:
    image_b64 = pybase64.b64encode(bytes(range(256)) * 40)
    body = encoded_add_body(image_b64, metadata)
    assert body == add_body(image_b64, metadata) == add_body(bytearray(image_b64), metadata)
    image = {"base64": image_b64.decode()} | ({} if metadata is None else {"metadata": metadata})
    assert json.loads(body) == {"image": image}


def test_a_callers_bytes_that_are_not_base64_are_refused() -> None:
    with pytest.raises(ValueError, match="base64 never has"):
        add_body(b'QUJD"},"x":{"', None)
