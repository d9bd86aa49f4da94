"""Control routes, Python-side control, persistence across restarts, and the ways to run it."""

from __future__ import annotations

import threading
from pathlib import Path

import aiohttp
import pytest

from pipeline.emulator import Emulator, EmulatorSettings, EmulatorThread, StoredImage, embedded_emulator
from tests.imagefactory import jpeg_bytes

from .apiclient import Api, b64, basic_auth


async def test_control_settings_get_and_post_change_the_live_settings(
    api: Api, emulator: EmulatorThread
) -> None:
    assert (await api.control("GET", "/settings")).body == EmulatorSettings().to_dict()
    reply = await api.control("POST", "/settings", {"page_cap": 7, "id_kind": "str"})
    assert (reply.status, reply.body["page_cap"], reply.body["id_kind"]) == (200, 7, "str")
    assert emulator.settings.page_cap == 7


@pytest.mark.parametrize(
    "changes",
    [{"nope": 1}, {"page_cap": 0}, {"fail_before": 1.5}, {"id_kind": "uuid"}, {"list_metadata": "yes"}, [1]],
)
async def test_control_settings_refuses_bad_changes_and_changes_nothing(
    api: Api, emulator: EmulatorThread, changes: object
) -> None:
    before = emulator.settings
    body = {"page_cap": 5, **changes} if isinstance(changes, dict) else changes
    reply = await api.control("POST", "/settings", body)
    assert reply.status == 400 and "error" in reply.body
    assert emulator.settings == before


def test_configure_validates_and_applies_all_or_nothing(emulator: EmulatorThread) -> None:
    with pytest.raises(ValueError, match="delete_unknown"):
        emulator.configure(delete_cap=3, delete_unknown="explode")
    assert emulator.settings.delete_cap == EmulatorSettings().delete_cap
    assert emulator.configure(rate_limit=2.5, seed=None).rate_limit == 2.5


async def test_control_images_requests_and_reset(api: Api, emulator: EmulatorThread) -> None:
    data = jpeg_bytes(1)
    await api.add(data, {"k": "v"})
    [image] = (await api.control("GET", "/images")).body
    assert {k: image[k] for k in ("id", "size", "metadata")} == {
        "id": 1,
        "size": len(data),
        "metadata": {"k": "v"},
    }
    [record] = (await api.control("GET", "/requests")).body
    assert (record["method"], record["outcome"], record["status_code"]) == ("POST", "ok", 0)
    await api.control("POST", "/settings", {"page_cap": 3})
    assert (await api.control("POST", "/reset")).status == 200
    assert (await api.control("GET", "/images")).body == []
    assert (await api.control("GET", "/requests")).body == []
    assert emulator.settings == EmulatorSettings()
    assert (await api.add(jpeg_bytes(2))).result["id"] == 1


async def test_control_seed_inserts_fake_images_without_http_calls(
    api: Api, emulator: EmulatorThread
) -> None:
    reply = await api.control("POST", "/seed", {"n": 3, "metadata": {"bench": True}})
    assert reply.body == {"ids": [1, 2, 3]}
    assert [i.metadata for i in emulator.images()] == [{"bench": True}] * 3
    assert emulator.requests() == []


async def test_seeded_images_list_like_others_but_have_no_file(api: Api, emulator: EmulatorThread) -> None:
    ids = emulator.seed(3, lambda i: {"i": i})
    [item] = (await api.list(2, 1)).result
    assert item == {"id": ids[2], "url": f"{api.base_url}/files/3", "metadata": {"i": 2}}
    async with api.session.get(item["url"]) as resp:
        assert (resp.status, (await resp.json())["status_code"]) == (404, 2)


async def test_listing_a_large_seeded_collection_pages_through_every_id(
    api: Api, emulator: EmulatorThread
) -> None:
    ids = emulator.seed(20_000)
    emulator.configure(list_metadata=False)
    seen: list[int] = []
    offset = 0
    while page := (await api.list(offset, 1000)).result:
        seen.extend(item["id"] for item in page)
        offset += len(page)
    assert seen == ids


async def test_restart_with_the_same_data_dir_keeps_images_and_id_sequence(tmp_path: Path) -> None:
    emu = Emulator(tmp_path / "emu")
    base = await emu.start()
    async with aiohttp.ClientSession() as session:
        api = Api(session, base)
        for i in range(3):
            await api.add(jpeg_bytes(i), {"i": i})
        await api.delete([3])
        await api.update(2, {"i": "two"})
    before = emu.images()
    await emu.stop()

    emu = Emulator(tmp_path / "emu")
    base = await emu.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, base)
            assert [(i.id, i.sha256, i.metadata) for i in emu.images()] == [
                (i.id, i.sha256, i.metadata) for i in before
            ]
            assert (await api.add(jpeg_bytes(9))).result["id"] == 4
            assert [m["id"] for m in (await api.search(jpeg_bytes(1))).result] == [2]
            async with session.get(f"{base}/files/1") as resp:
                assert await resp.read() == jpeg_bytes(0)
    finally:
        await emu.stop()


async def test_restart_keeps_string_ids_as_strings(tmp_path: Path) -> None:
    emu = Emulator(tmp_path, EmulatorSettings(id_kind="str"))
    [image_id] = emu.seed(1)
    await emu.stop()
    emu = Emulator(tmp_path)
    assert [i.id for i in emu.images()] == [image_id] and isinstance(image_id, str)
    await emu.stop()


async def test_emulator_without_data_dir_uses_a_temp_dir_removed_on_stop() -> None:
    emu = Emulator()
    await emu.start()
    data_dir = emu.data_dir
    assert (data_dir / "emulator.db").exists()
    await emu.stop()
    assert not data_dir.exists()


async def test_embedded_emulator_serves_on_a_free_loopback_port_with_the_given_credentials(
    tmp_path: Path,
) -> None:
    async with embedded_emulator(tmp_path, "key", "secret") as base_url, aiohttp.ClientSession() as session:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/v2/face_search")
        payload = {"image": {"base64": b64(jpeg_bytes(1))}}
        headers = {"Authorization": basic_auth("key", "secret")}
        async with session.post(f"{base_url}/images", json=payload, headers=headers) as resp:
            assert (await resp.json())["status_code"] == 0
    assert (tmp_path / "files" / "1").read_bytes() == jpeg_bytes(1)


def test_emulator_thread_serves_sync_callers_and_its_methods_are_thread_safe(tmp_path: Path) -> None:
    with EmulatorThread(EmulatorSettings(page_cap=5), tmp_path) as th:
        assert th.base_url.startswith("http://127.0.0.1:")
        assert th.seed(2) == [1, 2]
        results: list[list[StoredImage]] = []
        workers = [threading.Thread(target=lambda: results.append(th.images())) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert [len(r) for r in results] == [2] * 4
        th.configure(page_cap=9)
        assert th.emulator.settings.page_cap == 9
        th.reset()
        assert (th.images(), th.requests(), th.settings.page_cap) == ([], [], 5)
