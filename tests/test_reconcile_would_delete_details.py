"""A dry run names, beside each image it would delete, what tells whose it is: the file its metadata names,
its url and its metadata's keys — on stderr escaped and one short line each, in the ``--would-delete-file``
lines and ``--json``'s ``would_delete_items`` as listed (bounded: metadata too long to keep becomes the
list of its keys). Real ``facesync`` processes against the emulator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import KEY_FIELD
from pipeline.emulator import EmulatorThread
from pipeline.engine.deletes import METADATA_SHOWN, URL_SHOWN, listed_metadata, listed_url
from pipeline.keys import ImageId
from pipeline.output.text import would_delete_detail
from pipeline.state import State
from pipeline.state.rows import Tombstone
from tests.helpers import config_data, run_facesync, write_config_file, write_files
from tests.imagefactory import jpeg_bytes

#: Metadata that tries to write to the terminal: a key name and a key value with escapes and a newline.
HOSTILE_NAME = "\x1b]0;owned\x07title"
HOSTILE_KEY = "old/\x1b[2Jcleared\nfacesync: forged.jpg"
#: The longest "would delete" line a dry run may print: whatever the metadata holds, a short line.
LONGEST_LINE = 500


def facesync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_facesync("--config", str(config), *args)


@pytest.fixture
def orphans(emulator: EmulatorThread, tmp_path: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A config whose state holds two synced files, against a collection with four foreign images more:
    one a legacy gallery's, one naming a file of another archive, one hostile, one with huge metadata."""
    write_files(tmp_path / "archive", {f"photos/IMG_{i}.jpg": jpeg_bytes(i) for i in range(2)})
    data = config_data(emulator.base_url, tmp_path, state=tmp_path / "state" / "facesync.db")
    path = write_config_file(tmp_path / "facesync.yaml", data)
    assert facesync(path, "sync").returncode == 0
    metadata: list[dict[str, Any]] = [
        {"owner": "Lan", "album": "Tết 2019"},
        {KEY_FIELD: "2019/IMG_7.jpg", "camera": "X100"},
        {KEY_FIELD: HOSTILE_KEY, HOSTILE_NAME: "x", **{f"k{n:02}": n for n in range(20)}},
        {"caption": "x" * (METADATA_SHOWN + 10), "owner": "Minh"},
    ]
    ids = [emulator.seed(1, meta)[0] for meta in metadata]
    return path, {str(i): {"metadata": m} for i, m in zip(ids, metadata, strict=True)}


def test_each_would_delete_line_names_the_file_the_url_and_the_metadata_keys_escaped_and_short(
    orphans: tuple[Path, dict[str, dict[str, Any]]], emulator: EmulatorThread
) -> None:
    config, seeded = orphans
    urls = {str(i.id): i.url for i in emulator.images()}

    run = facesync(config, "reconcile", "--dry-run", "--max-delete", "9")

    assert run.returncode == 0, run.stderr
    lines = {
        line.split(":", 2)[1].split()[-1]: line
        for line in run.stderr.splitlines()
        if line.startswith("facesync: would delete ")
    }
    assert set(lines) == set(seeded)
    legacy, other, hostile, huge = (lines[i] for i in seeded)
    assert legacy.endswith(f": not held by the state; url {urls[next(iter(seeded))]}; metadata album, owner")
    assert "; file 2019/IMG_7.jpg; url " in other and other.endswith("; metadata camera, facesync_key")
    assert "\x1b" not in run.stderr and "\x07" not in run.stderr
    assert "; file old/\\x1b[2Jcleared\\nfacesync: forged.jpg; url " in hostile
    assert (
        "metadata \\x1b]0;owned\\x07title, facesync_key, k00, k01, k02, k03, k04, k05 (+14 more)" in hostile
    )
    assert huge.endswith("; metadata caption, owner")  # too long to keep whole: its keys
    assert not any(line.startswith("facesync: forged") for line in run.stderr.splitlines())
    assert max(len(line) for line in lines.values()) <= LONGEST_LINE


def test_the_file_and_json_carry_each_image_url_and_metadata_as_listed(
    orphans: tuple[Path, dict[str, dict[str, Any]]], emulator: EmulatorThread, tmp_path: Path
) -> None:
    config, seeded = orphans
    urls = {str(i.id): i.url for i in emulator.images()}
    listed = tmp_path / "would-delete.ndjson"

    run = facesync(
        config, "reconcile", "--dry-run", "--json", "--max-delete", "9", "--would-delete-file", str(listed)
    )

    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    every = [json.loads(line) for line in listed.read_text(encoding="utf-8").splitlines()]
    assert [e["id"] for e in every] == out["would_delete"]  # the id list is as it was
    assert out["would_delete_items"] == every
    huge = list(seeded)[3]
    for entry in every:
        image_id = str(entry["id"])
        assert set(entry) == {"id", "key", "reason", "url", "metadata"}
        assert (entry["reason"], entry["url"]) == ("orphan", urls[image_id])
        expected = seeded[image_id]["metadata"]
        assert entry["metadata"] == (sorted(expected) if image_id == huge else expected)
        assert entry["key"] == expected.get(KEY_FIELD)


def test_an_image_the_state_already_meant_to_delete_is_named_with_its_url_and_metadata(
    orphans: tuple[Path, dict[str, dict[str, Any]]], emulator: EmulatorThread, tmp_path: Path
) -> None:
    config, seeded = orphans
    first: ImageId = emulator.images()[2].id  # the legacy image
    state = State.open(tmp_path / "state" / "facesync.db")
    state.apply(tombstones_add=[Tombstone(first, None, "replaced")])
    state.close()

    run = facesync(config, "reconcile", "--dry-run", "--json", "--max-delete", "9")

    assert run.returncode == 0, run.stderr
    [known] = [e for e in json.loads(run.stdout)["would_delete_items"] if e["reason"] == "pending_delete"]
    assert known["id"] == first and known["metadata"] == seeded[str(first)]["metadata"]
    assert f"would delete {first}: the state already meant to delete it; url http" in run.stderr


def test_what_a_dry_run_keeps_of_a_listed_image_is_bounded() -> None:
    assert listed_metadata({"b": 1, "a": "é"}) == '{"a": "\\u00e9", "b": 1}'
    many = {f"name-{n:03}-{'x' * 200}": "v" * 100 for n in range(300)}
    kept = json.loads(listed_metadata(many))
    assert kept == [name[:100] for name in sorted(many)[:100]]
    assert listed_url("http://h/1.jpg") == "http://h/1.jpg"
    assert listed_url("http://h/" + "x" * URL_SHOWN) is None
    assert listed_url(None) is None


def test_a_would_delete_detail_is_cut_and_escaped() -> None:
    detail = would_delete_detail("orphan", "a/" + "é" * 300, "http://h/\u202e" + "y" * 300, {"\n": 1})
    assert detail.startswith("not held by the state; file a/éé")
    assert "\u202e" not in detail and "\\u202e" in detail and "metadata \\n" in detail
    assert len(detail) < 300
    names = {f"{n:03}" + "\u202e" * 100: n for n in range(30)}
    worst = would_delete_detail("pending_delete", "\x1b" * 300, "\n" * 300, names)
    assert len(worst) <= 480 and worst.endswith(" (+22 more)")
    assert would_delete_detail("duplicate", None, "http://h/1", {}) == (
        "a superseded copy of one of ours; url http://h/1; no metadata"
    )
    assert would_delete_detail("orphan", None, None, None) == "not held by the state"
