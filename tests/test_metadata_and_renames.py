"""Metadata templates, JSON sidecars and renames: what changes is sent as a PUT, never as an upload."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from pipeline.config import KEY_FIELD, SHA_FIELD, TOKEN_FIELD
from pipeline.emulator import EmulatorThread
from pipeline.engine.metadata import MetadataBuilder
from tests.helpers import assert_in_step, make_config, state_rows, sync, write_files
from tests.imagefactory import jpeg_bytes


def methods(emulator: EmulatorThread, since: int = 0) -> Counter[str]:
    return Counter(r.method for r in emulator.requests()[since:])


def metadata_by_key(emulator: EmulatorThread) -> dict[str, dict[str, object]]:
    return {str(i.metadata[KEY_FIELD]): dict(i.metadata) for i in emulator.images() if i.metadata}


async def test_every_image_carries_its_key_token_and_the_template_fields(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    write_files(tmp_path / "archive", {"Hanoi 2019/IMG_1.jpg": jpeg_bytes(1)})
    config = make_config(emulator.base_url, tmp_path, metadata={"album": "{album}", "file": "{stem}"})

    assert (await sync(config))[0].exit_code == 0

    meta = metadata_by_key(emulator)["Hanoi 2019/IMG_1.jpg"]
    row = state_rows(config)["Hanoi 2019/IMG_1.jpg"]
    assert meta == {
        "album": "Hanoi 2019",
        "file": "IMG_1",
        KEY_FIELD: "Hanoi 2019/IMG_1.jpg",
        TOKEN_FIELD: row.token,
        SHA_FIELD: row.sha256,  # so a lost state can be rebuilt from the collection (reconcile --adopt)
    }


async def test_a_template_edit_causes_puts_and_zero_adds(emulator: EmulatorThread, tmp_path: Path) -> None:
    files = {f"a/{i}.jpg": jpeg_bytes(i) for i in range(5)}
    write_files(tmp_path / "archive", files)
    first = make_config(emulator.base_url, tmp_path, metadata={"album": "{album}"})
    assert (await sync(first))[0].exit_code == 0
    since = len(emulator.requests())

    edited = make_config(emulator.base_url, tmp_path, metadata={"album": "{album}", "name": "{name}"})
    report, log = await sync(edited)

    assert report.exit_code == 0, log
    assert (report.added, report.replaced, report.metadata_updated) == (0, 0, 5)
    assert methods(emulator, since) == {"PUT": 5}
    assert all(m["name"] == k.split("/")[1] for k, m in metadata_by_key(emulator).items())
    again, _ = await sync(edited)
    assert again.requests == 0
    assert_in_step(edited, emulator, files)


async def test_a_sidecar_is_merged_and_its_edit_is_one_put(emulator: EmulatorThread, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    files = {"p/1.jpg": jpeg_bytes(1), "p/2.jpg": jpeg_bytes(2)}
    write_files(root, files)
    (root / "p/1.jpg.json").write_text(json.dumps({"people": ["An"], "user": "ignored"}))
    config = make_config(emulator.base_url, tmp_path)

    report, log = await sync(config)

    assert report.exit_code == 0 and report.added == 2, log
    assert "sidecar keys ignored p/1.jpg: reserved: user" in log
    meta = metadata_by_key(emulator)
    assert meta["p/1.jpg"]["people"] == ["An"] and "user" not in meta["p/1.jpg"]
    since = len(emulator.requests())

    (root / "p/1.jpg.json").write_text(json.dumps({"people": ["An", "Binh"]}))
    os.utime(root / "p/1.jpg.json", ns=(1, 2_000_000_000_000))
    report, _ = await sync(config)

    assert (report.added, report.metadata_updated) == (0, 1)
    assert methods(emulator, since) == {"PUT": 1}
    assert metadata_by_key(emulator)["p/1.jpg"]["people"] == ["An", "Binh"]


async def test_a_broken_sidecar_is_reported_and_the_image_still_uploaded(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(root, {"1.jpg": jpeg_bytes(1)})
    (root / "1.jpg.json").write_text("{not json")
    config = make_config(emulator.base_url, tmp_path)

    report, log = await sync(config)

    assert report.exit_code == 0 and report.added == 1
    assert "sidecar ignored 1.jpg: sidecar is not valid JSON" in log


async def test_moving_ten_files_is_ten_puts_no_adds_no_deletes(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    files = {f"inbox/IMG_{i}.jpg": jpeg_bytes(i) for i in range(10)}
    files["keep/other.jpg"] = jpeg_bytes(99)
    write_files(root, files)
    config = make_config(emulator.base_url, tmp_path, metadata={"album": "{album}"})
    assert (await sync(config))[0].exit_code == 0
    ids = {k: r.remote_id for k, r in state_rows(config).items()}
    since = len(emulator.requests())

    (root / "sorted").mkdir()
    for i in range(10):
        os.rename(root / f"inbox/IMG_{i}.jpg", root / f"sorted/IMG_{i}.jpg")
        files[f"sorted/IMG_{i}.jpg"] = files.pop(f"inbox/IMG_{i}.jpg")
    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert (report.renamed, report.added, report.removed) == (10, 0, 0)
    assert methods(emulator, since) == {"PUT": 10}
    rows = state_rows(config)
    assert all(rows[f"sorted/IMG_{i}.jpg"].remote_id == ids[f"inbox/IMG_{i}.jpg"] for i in range(10))
    assert metadata_by_key(emulator)["sorted/IMG_3.jpg"]["album"] == "sorted"
    assert_in_step(config, emulator, files)
    assert (await sync(config))[0].requests == 0


async def test_a_copy_of_a_synced_file_is_uploaded_as_its_own_image(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    files = {"a.jpg": jpeg_bytes(1)}
    write_files(root, files)
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0

    files["copy/a.jpg"] = files["a.jpg"]
    write_files(root, {"copy/a.jpg": files["a.jpg"]})
    report, _ = await sync(config)

    assert (report.added, report.renamed, report.removed) == (1, 0, 0)
    assert_in_step(config, emulator, files)


def test_the_signature_changes_with_the_template_output_and_the_sidecar_stamp() -> None:
    plain = MetadataBuilder({})
    assert plain.signature("a/b.jpg", size=1, mtime_ns=2, sha256="x", sidecar=None) == "|"
    assert plain.signature("a/b.jpg", size=1, mtime_ns=2, sha256="x", sidecar="3-4") == "|3-4"
    album = MetadataBuilder({"album": "{album}"})
    one = album.signature("a/b.jpg", size=1, mtime_ns=2, sha256="x", sidecar=None)
    assert one == album.signature("a/c.jpg", size=9, mtime_ns=9, sha256="y", sidecar=None)
    assert one != album.signature("z/b.jpg", size=1, mtime_ns=2, sha256="x", sidecar=None)
