"""``fast_adds``: the emulator's bench mode, where an add costs the answer and nothing else."""

from __future__ import annotations

import hashlib

from pipeline.emulator import EmulatorThread

from .apiclient import Api


async def test_a_fast_add_keeps_hash_size_and_metadata_and_lists_like_any_image(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.configure(fast_adds=True)
    data = b"GIF89a not even decoded"

    reply = await api.add(data, {"facesync_key": "a.gif"})

    assert (reply.status, reply.code) == (200, 0)
    assert reply.result["metadata"] == {"facesync_key": "a.gif"}
    [stored] = emulator.images()
    assert (stored.id, stored.sha256, stored.size) == (
        reply.result["id"],
        hashlib.sha256(data).hexdigest(),
        23,
    )
    [item] = (await api.list()).result
    assert (item["id"], item["metadata"]) == (stored.id, {"facesync_key": "a.gif"})
    async with api.session.get(item["url"]) as resp:  # no file was written: nothing to download
        assert resp.status == 404


async def test_a_fast_add_still_refuses_a_body_that_is_not_an_image_add(
    api: Api, emulator: EmulatorThread
) -> None:
    emulator.configure(fast_adds=True)
    reply = await api.call("POST", "/images", json={"image": {"base64": "not base64!"}})
    assert reply.status == 400 and emulator.images() == []
