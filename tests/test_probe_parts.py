"""The probe's pure parts: the searches for a limit, the junk body, made-up ids, the journal, the
probe's images and the table a person reads."""

from __future__ import annotations

import io
import json
import random
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config import ApiConfig, Config
from pipeline.config.profile import ServiceProfile
from pipeline.errors import ConfigError
from pipeline.probe import bounds
from pipeline.probe.image import drawn, unique
from pipeline.probe.journal import Journal, Run, journal_path, new_token, token_age
from pipeline.probe.prober import Outcome
from pipeline.probe.table import HEAD, lines, rows
from tests.imagefactory import jpeg_bytes, png_bytes


def search(limit: int, lo: int, hi: int, steps: tuple[int, ...]) -> tuple[bounds.Bracket, int]:
    """Narrow a bracket against a service whose limit is ``limit``; the bracket and the tries it took."""
    bracket = bounds.Bracket(lo, hi, steps)
    tries = 0
    while (value := bracket.next()) is not None:
        assert bracket.lo < value < bracket.hi
        bracket.answer(value, value <= limit)
        tries += 1
        assert bracket.lo <= limit < bracket.hi
    return bracket, tries


@pytest.mark.parametrize("limit", [1 << 20, 2 << 20, 3_000_000, 5_000_000, 8 << 20, 10_000_000, 10 << 20])
def test_round_body_limits_are_found_to_the_byte_in_a_few_tries(limit: int) -> None:
    """From 64 KiB to the body of a 10 MiB file (the default limits.max_image_bytes)."""
    bracket, tries = search(limit, bounds.MIN_BODY, 13_985_112, bounds.SIZE_STEPS)
    assert (bracket.lo, bracket.hi, tries <= 8) == (limit, limit + 1, True), tries


@pytest.mark.parametrize(
    ("limit", "most"), [(1, 9), (5, 10), (10, 10), (50, 9), (100, 8), (250, 7), (999, 12)]
)
def test_delete_caps_are_found_exactly_in_a_dozen_tries_at_most(limit: int, most: int) -> None:
    bracket = bounds.Bracket(1, 1000, bounds.COUNT_STEPS, geometric=False)
    tries = 0
    while (value := bracket.next()) is not None:
        bracket.answer(value, value <= limit)
        tries += 1
    assert (bracket.lo, tries) == (limit, most)


def test_any_limit_is_found_exactly_and_always_stays_bracketed() -> None:
    for seed in range(200):
        rng = random.Random(seed)
        limit = rng.randrange(bounds.MIN_BODY, 50_000_000)
        bracket, tries = search(limit, bounds.MIN_BODY, 50_000_000, bounds.SIZE_STEPS)
        assert (bracket.lo, tries <= 40) == (limit, True), (seed, limit, tries)


@pytest.mark.parametrize("size", [27, 28, 29, 30, 1000, 65_536, 1_402_204])
def test_the_junk_body_has_exactly_the_size_asked_and_an_image_of_zero_bytes(size: int) -> None:
    body = bounds.junk_search_body(size)
    assert len(body) == size
    assert set(json.loads(body)["image"]["base64"]) == {"A"}


def test_made_up_ids_keep_the_shape_and_are_none_of_those_seen() -> None:
    oid = "65f0a1b2c3d4e5f6a7b8c9d0"
    made = bounds.made_up_ids(oid, {"fffffffffffffffffffffff0"}, 1000)
    assert len(set(made)) == 1000 and "fffffffffffffffffffffff0" not in made
    assert all(isinstance(i, str) and re.fullmatch(r"f{21}[0-9a-f]{3}", i) for i in made)
    assert bounds.made_up_ids(41, {"1000042"}, 3) == [1000041, 1000043, 1000044]
    assert bounds.made_up_ids("77", set(), 2) == ["1000077", "1000078"]
    assert bounds.made_up_ids("img-ab", set(), 1000) == []  # too few hex digits to count 1000 ids


def test_the_journal_keeps_each_runs_ids_and_unanswered_adds_per_endpoint_and_goes_when_empty(
    tmp_path: Path,
) -> None:
    path = journal_path(tmp_path / "service-profile.json")
    Journal.read(path, "there").sending("t0")
    here = Journal.read(path, "here")
    here.sending("t1")
    here.answered("t1", 7)
    here.sending("t1")
    here.answered("t1", 7)
    here.sending("t1")

    again = Journal.read(path, "here")
    assert again.runs == {"t1": Run(ids=[7], unanswered=True)}
    assert Journal.read(path, "there").runs == {"t0": Run(ids=[], unanswered=True)}
    again.forget({"t1"})
    Journal.read(path, "there").forget({"t0"})
    assert not path.exists()


def test_a_journal_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_text("{")
    with pytest.raises(ConfigError, match="cannot read the probe journal"):
        Journal.read(path, "here")


def test_a_token_tells_its_age_and_anything_else_has_none() -> None:
    now = time.time()
    assert 3599 <= (token_age(new_token(now - 3600), now) or 0) <= 3601
    assert token_age("hello", now) is None and token_age(42, now) is None


@pytest.mark.parametrize("data", [jpeg_bytes(1), png_bytes(2), drawn(3)])
def test_a_probe_image_is_other_bytes_with_the_same_picture(data: bytes) -> None:
    a, b = unique(data, "t a"), unique(data, "t b")
    assert len({data, a, b}) == 3
    pictures = [Image.open(io.BytesIO(x)).convert("RGB").tobytes() for x in (data, a, b)]
    assert pictures[0] == pictures[1] == pictures[2]


def test_only_jpeg_and_png_are_marked() -> None:
    with pytest.raises(ValueError, match="JPEG and PNG images only"):
        unique(b"GIF89a" + b"\0" * 20, "t")


def test_the_table_is_one_row_a_question_in_three_aligned_columns() -> None:
    profile = ServiceProfile(
        endpoint="embedded",
        measured_at=0.0,
        requests=12,
        id_field="id",
        id_kind="int",
        auth_http_status=401,
        refusal_http_status=400,
        page_cap=7,
        page_seen=7,
        list_order="oldest_first",
        list_metadata=False,
        delete_cap=50,
        delete_tried=1000,
        delete_unknown="ignore",
        dedup=False,
        max_body_bytes=1 << 20,
        body_refused=(1 << 20) + 1,
    )
    out = Outcome(profile, added=[1, 2], removed=2, verified=True)

    table = rows(out, Config(api=ApiConfig(base_url="embedded")))
    text = list(lines(out, Config(api=ApiConfig(base_url="embedded"))))

    assert {question: (seen, does) for question, seen, does in table} == {
        "bad credentials": ("HTTP 401, code 5", "stop at once, exit 3"),
        "image ids": ("int, field 'id'", "kept exactly as sent"),
        "refusals (code 1, 3, 6)": ("HTTP 400", "recorded, not retried"),
        "largest body": ("1,048,576 bytes at most", "files over 783 KB skipped"),
        "listing page": ("7 images at most", "pages of 7"),
        "listing order": ("oldest first", "pages by offset"),
        "metadata in listings": ("no", "no adopting: re-uploads"),
        "DELETE, unknown id": ("ignored", "counted as gone"),
        "ids per DELETE": ("50 at most", "batches of 50"),
        "same bytes twice": ("two images", "reconcile removes copies"),
        "throttling (code 4)": ("not met", "all workers pause"),
        "probe's images": ("2 added, 2 deleted", "none left (listing checked)"),
    }
    assert len(text) == len(table) + 1 and text[0].split() == " ".join(HEAD).split()
    assert len({line.index(table[0][1]) for line in text[1:2]} | {text[0].index("seen")}) == 1
    assert max(map(len, text)) <= 90
