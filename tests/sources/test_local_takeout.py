"""An unpacked Google Takeout tree as a plain folder source: its sidecars matched by Takeout's naming
rules (the same as in the zips: immich-go's, tests/sources/test_takeout.py), a folder of plain
``<file>.json`` sidecars exactly as before."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from pipeline.config import KEY_FIELD, SourceConfig
from pipeline.emulator import EmulatorThread
from pipeline.sources.local import LocalSource
from pipeline.sources.takeout import match_folder
from tests.helpers import make_config, sync, write_files
from tests.imagefactory import jpeg_bytes
from tests.sources.test_takeout import CASES
from tests.sources.test_zipped import GP, LONG, PHOTOS, SIDECARS

TEMPLATE = {"people": "{people}", "taken": "{taken:unknown}", "title": "{title}"}


def unpacked(root: Path) -> None:
    """The export of tests/sources/test_zipped.py, unzipped into one tree (as a user unpacks the parts)."""
    write_files(root, PHOTOS)
    for key, text in SIDECARS.items():
        (root / key).write_text(text, encoding="utf-8")


def sidecars(root: Path) -> dict[str, str | None]:
    return {item.key: item.sidecar for item in LocalSource(SourceConfig(path=root)).scan()}


@pytest.mark.parametrize(("json_name", "file_name", "want"), CASES)
def test_each_takeout_naming_case_finds_its_sidecar_in_a_folder(
    tmp_path: Path, json_name: str, file_name: str, want: str
) -> None:
    write_files(tmp_path, {file_name: jpeg_bytes(1), json_name: b"{}"})
    (item,) = LocalSource(SourceConfig(path=tmp_path, extensions=(os.path.splitext(file_name)[1],))).scan()
    st = (tmp_path / json_name).stat()
    stamp = f"{st.st_size}-{st.st_mtime_ns}"
    if want == "fast_track":
        assert item.sidecar == stamp  # the stamp of a <file>.json is as it always was: no PUT on upgrade
    elif want:
        assert item.sidecar == f"{stamp}:{json_name}"
    else:
        assert item.sidecar is None


async def test_an_unpacked_takeout_syncs_with_the_names_of_its_sidecars(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    unpacked(root)
    config = make_config(emulator.base_url, tmp_path, metadata=TEMPLATE)

    report, log = await sync(config)

    assert report.exit_code == 0 and report.added == len(PHOTOS), log
    got = {str(i.metadata[KEY_FIELD]): i.metadata["people"] for i in emulator.images() if i.metadata}
    assert got == {
        GP + "IMG_0001.jpg": "Lan",
        GP + "IMG_0001(1).jpg": "Minh",  # IMG_0001.jpg(1).json
        GP + "IMG_0002.jpg": "Lan, Minh",  # .supplemental-metadata.json
        GP + "IMG_0003.jpg": "Hoa",  # .supplemental-metadat.json (cut)
        GP + "IMG_0003-edited.jpg": "Hoa",  # its original's
        GP + LONG: "Binh",  # the name cut at 46 characters
    }
    again, _ = await sync(config)
    assert again.requests == 0 and again.unchanged == len(PHOTOS)

    since = len(emulator.requests())
    side = root / (GP + "IMG_0003.jpg.supplemental-metadat.json")
    side.write_text(json.dumps(json.loads(side.read_text()) | {"people": [{"name": "Tuan"}]}))
    os.utime(side, ns=(1, 2_000_000_000_000))
    report, log = await sync(config)

    assert (report.added, report.metadata_updated) == (0, 2), log  # the photo and its edited copy
    assert Counter(r.method for r in emulator.requests()[since:]) == {"PUT": 2}
    people = {str(i.metadata[KEY_FIELD]): i.metadata["people"] for i in emulator.images() if i.metadata}
    assert people[GP + "IMG_0003.jpg"] == people[GP + "IMG_0003-edited.jpg"] == "Tuan"


def test_a_folder_of_plain_sidecars_is_read_as_before(tmp_path: Path) -> None:
    write_files(tmp_path, {"a.jpg": jpeg_bytes(1), "IMG_1.jpg": jpeg_bytes(2), "IMG_10.jpg": jpeg_bytes(3)})
    (tmp_path / "a.jpg.json").write_text("{}")
    (tmp_path / "IMG_1.jpg.json").write_text("{}")
    names = [b"IMG_1.jpg", b"IMG_1.jpg.json", b"IMG_10.jpg", b"a.jpg", b"a.jpg.json", b"sub/"]
    assert match_folder(names, {b"a.jpg.json", b"IMG_1.jpg.json"}, (".jpg",)) is None  # nothing looked up
    found = sidecars(tmp_path)
    st = (tmp_path / "a.jpg.json").stat()
    assert found["a.jpg"] == f"{st.st_size}-{st.st_mtime_ns}" and found["IMG_10.jpg"] is None


async def test_a_lookup_finds_what_the_scan_finds_and_reads_the_named_sidecar(tmp_path: Path) -> None:
    """``facesync search`` looks each match up alone: the same item, the same sidecar, as the walk's."""
    unpacked(tmp_path)
    source = LocalSource(SourceConfig(path=tmp_path))
    scanned = list(source.scan())

    assert [source.lookup(item.key) for item in scanned] == scanned
    edited = source.lookup(GP + "IMG_0003-edited.jpg")
    assert edited is not None and (await source.read_sidecar(edited))["people"] == [{"name": "Hoa"}]
    assert source.lookup(GP + "gone.jpg") is None
