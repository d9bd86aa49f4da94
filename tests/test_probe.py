"""``facesync probe`` round trips: an emulator configured one way is probed, and the profile found is
played back — the same knobs must come out, the emulator's own images must be as they were, and the
probe must stay within its request budget."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.commands.probe import ProbeReport, probe
from pipeline.config import Config, load_config
from pipeline.config.profile import profile_path, read_profile, write_profile
from pipeline.emulator import EmulatorThread
from pipeline.emulator.profile import played, settings_for
from pipeline.probe.journal import PROBE_FIELD, new_token
from pipeline.probe.prober import BUDGET
from tests.helpers import config_data, make_config, write_config_file
from tests.imagefactory import make_jpeg

MiB = 1 << 20


def foreign(i: int) -> dict[str, Any]:
    """Other people's images: some bare, some with metadata, some another facesync archive's."""
    return [{}, {"owner": f"someone {i}"}, {"facesync_key": f"other/{i}.jpg", "facesync_token": "t"}][i % 3]


#: name → (emulator knobs, foreign images, limits.max_image_bytes of the probing config)
CONFIGS: dict[str, tuple[dict[str, Any], int, int]] = {
    "defaults": ({}, 5, MiB),
    "hex ids, _id, HTTP 200 errors, caps 7 and 50, unknown ids fail": (
        {
            "id_kind": "str",
            "add_id_field": "_id",
            "auth_http_status": 200,
            "refusal_http_status": 200,
            "page_cap": 7,
            "delete_cap": 50,
            "delete_unknown": "fail",
        },
        20,
        MiB,
    ),
    "image_id, large ids, newest first, dedup, one id a DELETE, pages of 3": (
        {
            "add_id_field": "image_id",
            "id_start": None,
            "list_order": "newest_first",
            "dedup": True,
            "page_cap": 3,
            "delete_cap": 1,
        },
        20,
        MiB,
    ),
    "no metadata in listings, 403, cap 250": (
        {
            "list_metadata": False,
            "auth_http_status": 403,
            "delete_cap": 250,
            "delete_unknown": "fail",
            "page_cap": 10,
        },
        25,
        MiB,
    ),
    "bodies of 1 MiB, hex ids, newest first, dedup": (
        {"max_body_bytes": MiB, "page_cap": 5, "dedup": True, "list_order": "newest_first", "id_kind": "str"},
        8,
        MiB,
    ),
    "an empty collection, dedup, cap 999": (
        {"dedup": True, "refusal_http_status": 200, "delete_cap": 999},
        0,
        MiB,
    ),
    "bodies of 3 MB, cap 100, pages of 4": (
        {"max_body_bytes": 3_000_000, "delete_cap": 100, "page_cap": 4},
        9,
        4 * MiB,
    ),
}


def probe_config(base_url: str, tmp_path: Path, max_image: int = MiB, **sections: Any) -> Config:
    """A config whose archive holds two JPEGs (the probe takes its picture from there); its rate is
    high, so that the limiter never paces these tests (the probe's own default is 5 a second)."""
    make_jpeg(tmp_path / "archive" / "a.jpg", 1)
    make_jpeg(tmp_path / "archive" / "b.jpg", 2)
    return make_config(base_url, tmp_path, limits={"max_image_bytes": max_image, "rate": 1000}, **sections)


async def run(config: Config, *, yes: bool = True) -> ProbeReport:
    return await probe(config, None, lambda question: yes)


@pytest.mark.parametrize(("knobs", "others", "max_image"), CONFIGS.values(), ids=list(CONFIGS))
async def test_probe_recovers_the_emulator_exactly_and_leaves_its_images_as_they_were(
    emulator: EmulatorThread, tmp_path: Path, knobs: dict[str, Any], others: int, max_image: int
) -> None:
    emulator.configure(**knobs)
    emulator.seed(others, foreign)
    before = emulator.images()
    config = probe_config(emulator.base_url, tmp_path, max_image)

    report = await run(config)

    assert report.exit_code == 0, report.to_json()
    found = report.outcome.profile
    assert played(settings_for(found)) == played(emulator.settings)
    assert emulator.images() == before
    assert report.outcome.verified is True and report.outcome.left == []
    assert len(emulator.requests()) == found.requests <= BUDGET
    assert read_profile(profile_path(config)) == found


async def test_a_large_collection_costs_no_more_requests_and_loses_no_image(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """2,500 images in pages of 100: the end is too far to find within the budget, so the order is not
    seen; the cap is, and the probe's images are deleted by id all the same."""
    emulator.configure(page_cap=100)
    emulator.seed(2500, foreign)
    before = emulator.images()

    report = await run(probe_config(emulator.base_url, tmp_path))

    assert report.exit_code == 0, report.to_json()
    assert report.outcome.profile.page_cap == 100
    assert emulator.images() == before
    assert len(report.outcome.added) == 2 and report.outcome.removed == 2
    assert len(emulator.requests()) <= BUDGET


async def test_a_declined_probe_stores_and_deletes_nothing_and_says_what_it_left_unmeasured(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.seed(4, foreign)
    before = emulator.images()

    report = await run(probe_config(emulator.base_url, tmp_path), yes=False)

    assert report.exit_code == 0
    assert report.outcome.skipped is not None and "--yes" in report.outcome.skipped
    assert {(r.method, r.path.rsplit("/", 1)[-1]) for r in emulator.requests()} == {
        ("GET", "images"),
        ("POST", "search"),
    }
    profile = report.outcome.profile
    assert (profile.auth_http_status, profile.refusal_http_status, profile.list_metadata) == (401, 400, True)
    assert (profile.id_kind, profile.dedup, profile.delete_cap, profile.delete_unknown) == (
        None,
        None,
        None,
        None,
    )
    assert emulator.images() == before


async def test_dead_probes_images_are_removed_and_a_running_probes_left_alone(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """An image tagged by a probe that started an hour ago is a dead probe's; one tagged a moment ago
    may be a probe running elsewhere: it is not this probe's to delete."""
    emulator.seed(1, {PROBE_FIELD: new_token(time.time() - 3600)})
    (young,) = emulator.seed(1, {PROBE_FIELD: new_token()})
    others = emulator.seed(3, foreign)

    report = await run(probe_config(emulator.base_url, tmp_path))

    assert report.exit_code == 0, report.to_json()
    assert report.outcome.leftovers == 1
    assert sorted(str(i.id) for i in emulator.images()) == sorted(str(i) for i in [young, *others])


async def test_the_embedded_emulator_plays_the_profile_the_config_names(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Probe an emulator, hand its profile to the embedded one (``emulator.profile``), probe that: the
    same answers."""
    emulator.configure(**CONFIGS["hex ids, _id, HTTP 200 errors, caps 7 and 50, unknown ids fail"][0])
    emulator.seed(20, foreign)
    measured = (await run(probe_config(emulator.base_url, tmp_path / "real"))).outcome.profile
    played_file = tmp_path / "measured.json"
    write_profile(played_file, measured)
    embedded = probe_config("embedded", tmp_path / "local", emulator={"profile": str(played_file)})

    report = await run(embedded)

    assert report.exit_code == 0, report.to_json()
    again = report.outcome.profile
    # The embedded emulator starts empty: the page cap cannot show, every other answer must match.
    assert played(settings_for(again)) | {"page_cap": 7} == played(settings_for(measured))


async def test_throttling_met_on_the_way_is_recorded_with_its_http_status(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(throttle_share=0.3, throttle_http_status=200, retry_after=0, seed=3)

    report = await run(probe_config(emulator.base_url, tmp_path))

    assert report.outcome.profile.throttle_http_status == 200
    assert emulator.images() == []


async def test_an_add_whose_answer_is_lost_leaves_a_tagged_image_the_next_probe_removes(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """The service stores each add and answers 503: the probe fails (exit 1, no profile written) with
    tagged images it has no id for; its journal names their token, so the next probe deletes them."""
    emulator.seed(3, foreign)
    before = emulator.images()
    emulator.configure(store_then_fail=1.0)
    config = probe_config(emulator.base_url, tmp_path)

    failed = await run(config)

    left = [image for image in emulator.images() if image not in before]
    assert (failed.exit_code, failed.written, failed.outcome.added) == (1, False, [])
    assert left and all(image.metadata.get(PROBE_FIELD) for image in left)
    emulator.configure(store_then_fail=0.0)

    again = await run(config)

    assert again.exit_code == 0, again.to_json()
    assert again.outcome.leftovers == len(left)
    assert emulator.images() == before


async def test_a_limit_the_last_profile_met_is_measured_again_not_lost(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """The first profile shrinks limits.max_image_bytes to what fits in 1 MiB; the next probe, run with
    that config, still finds the 1 MiB limit instead of seeing its smaller body taken."""
    emulator.configure(max_body_bytes=MiB)
    config = probe_config(emulator.base_url, tmp_path)
    first = (await run(config)).outcome.profile

    loaded = load_config(write_config_file(tmp_path / "c.yaml", config_data(emulator.base_url, tmp_path)))
    second = (await run(loaded)).outcome.profile

    assert loaded.limits.max_image_bytes < MiB
    assert (
        (first.max_body_bytes, first.body_refused)
        == (second.max_body_bytes, second.body_refused)
        == (MiB, MiB + 1)
    )
