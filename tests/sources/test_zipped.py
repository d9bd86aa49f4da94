"""Zip archives as a source (a Google Takeout export), read in place: real zips built under tmp_path,
synced against the emulator. Takeout's naming cases are immich-go's (see tests/sources/test_takeout.py)."""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from pipeline.config import KEY_FIELD, SourceConfig
from pipeline.emulator import EmulatorThread
from pipeline.errors import ScanError, Skipped
from pipeline.sources import UNREADABLE, key_order, open_source
from pipeline.sources.zipped import ZipSource
from tests.helpers import assert_in_step, make_config, sync
from tests.imagefactory import jpeg_bytes

WHEN = (2019, 5, 1, 8, 30, 0)
GP = "Takeout/Google Photos/Photos from 2019/"


def make_zip(path: Path, members: Mapping[str, bytes | str], *, stored: bool = False) -> Path:
    """A zip of ``members`` (text is a JSON sidecar), every member dated :data:`WHEN`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=WHEN)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(info, data.encode() if isinstance(data, str) else data)
    return path


def sidecar(title: str, *people: str, taken: int = 1556699400) -> str:
    """A Takeout sidecar as Google writes it (the fields facesync reads, and some it does not)."""
    return json.dumps(
        {
            "title": title,
            "description": "",
            "imageViews": "0",
            "creationTime": {"timestamp": str(taken + 60), "formatted": "..."},
            "photoTakenTime": {"timestamp": str(taken), "formatted": "..."},
            "geoData": {"latitude": 0.0, "longitude": 0.0, "altitude": 0.0},
            "people": [{"name": p} for p in people],
            "url": "https://photos.google.com/photo/x",
            "googlePhotosOrigin": {"mobileUpload": {"deviceType": "ANDROID_PHONE"}},
        }
    )


LONG = "PXL_20190501_083000123_a_very_long_name_from_a_phone_app.jpg"
PHOTOS = {GP + n: jpeg_bytes(i) for i, n in enumerate(
    ["IMG_0001.jpg", "IMG_0001(1).jpg", "IMG_0002.jpg", "IMG_0003.jpg", "IMG_0003-edited.jpg", LONG], start=1
)}  # fmt: skip
SIDECARS = {
    GP + "IMG_0001.jpg.json": sidecar("IMG_0001.jpg", "Lan"),
    GP + "IMG_0001.jpg(1).json": sidecar("IMG_0001.jpg", "Minh"),
    GP + "IMG_0002.jpg.supplemental-metadata.json": sidecar("IMG_0002.jpg", "Minh", "Lan"),
    GP + "IMG_0003.jpg.supplemental-metadat.json": sidecar("IMG_0003.jpg", "Hoa"),
    GP + LONG[:46] + ".json": sidecar(LONG, "Binh"),
    GP + "metadata.json": json.dumps({"title": "Photos from 2019"}),
}


def takeout(root: Path, sidecars: Mapping[str, str] = SIDECARS) -> None:
    """A Takeout export in two parts, split as Google splits one: photos and their sidecars apart."""
    keys = sorted(PHOTOS)
    make_zip(root / "takeout-001.zip", {k: PHOTOS[k] for k in keys[:4]} | dict(list(sidecars.items())[:2]))
    make_zip(root / "takeout-002.zip", {k: PHOTOS[k] for k in keys[4:]} | dict(list(sidecars.items())[2:]))


def source(path: Path, **options: object) -> ZipSource:
    made = open_source(SourceConfig(path=path, **options))  # type: ignore[arg-type]
    assert isinstance(made, ZipSource)
    return made


def test_members_are_keys_in_key_order_with_the_zips_own_stat(tmp_path: Path) -> None:
    members = {"a/b.jpg": b"\xff\xd8one", "a-c.jpg": b"\xff\xd8two", "é.jpg": b"\xff\xd8three",
               "a/notes.txt": b"x", "__MACOSX/a/._b.jpg": b"x", ".hidden.jpg": b"x",
               "../up.jpg": b"x"}  # fmt: skip
    make_zip(tmp_path / "one.zip", members)

    items = list(source(tmp_path / "one.zip").scan())

    assert [i.key for i in items] == ["a-c.jpg", "a/b.jpg", "é.jpg"]  # "-" < "/": key_order, bytes
    assert [key_order(i.key) for i in items] == sorted(key_order(i.key) for i in items)
    first = items[1]
    info = zipfile.ZipFile(tmp_path / "one.zip").getinfo("a/b.jpg")
    assert (first.size, first.etag, first.sidecar) == (info.file_size, f"crc32:{info.CRC:08x}", None)
    assert first.mtime_ns == 1556699400 * 1_000_000_000


async def test_a_glob_of_parts_is_one_tree_with_sidecars_matched_across_parts(tmp_path: Path) -> None:
    takeout(tmp_path)
    src = source(tmp_path / "takeout-*.zip")

    items = {i.key: i for i in src.scan()}

    assert set(items) == set(PHOTOS)
    titles = {k: (await src.read_sidecar(i))["people"][0]["name"] for k, i in items.items() if i.sidecar}
    assert titles == {
        GP + "IMG_0001.jpg": "Lan",
        GP + "IMG_0001(1).jpg": "Minh",
        GP + "IMG_0002.jpg": "Minh",
        GP + "IMG_0003.jpg": "Hoa",
        GP + "IMG_0003-edited.jpg": "Hoa",  # an edited copy: its original's sidecar
        GP + LONG: "Binh",  # a name cut at 46 characters
    }
    assert await src.read(items[GP + "IMG_0002.jpg"], 10**6) == PHOTOS[GP + "IMG_0002.jpg"]
    await src.close()


def damage(path: Path, member: str) -> None:
    """Flip bytes in the middle of a stored member's data: its CRC no longer matches."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        f.seek(info.header_offset + 30 + name_len + extra_len + info.file_size // 2)
        f.write(b"\x00\x01\x02\x03")


async def test_a_damaged_member_is_refused_alone_and_an_unreadable_archive_is_a_scan_error(
    tmp_path: Path,
) -> None:
    make_zip(tmp_path / "a.zip", {"x.jpg": jpeg_bytes(1), "y.jpg": jpeg_bytes(2)}, stored=True)
    damage(tmp_path / "a.zip", "x.jpg")
    (tmp_path / "b.zip").write_bytes(b"PK\x03\x04 not really a zip")
    src = source(tmp_path / "*.zip")

    items = {i.key: i for i in src.scan()}

    assert set(items) == {"x.jpg", "y.jpg"}
    assert src.scan_errors == [f"{tmp_path / 'b.zip'}: not a readable zip archive: File is not a zip file"]
    with pytest.raises(Skipped) as refused:
        await src.read(items["x.jpg"], 10**6)
    assert refused.value.reason == UNREADABLE and "damaged member of a.zip" in str(refused.value)
    assert await src.read(items["y.jpg"], 10**6) == jpeg_bytes(2)
    await src.close()


def test_a_folder_with_archives_reads_its_zips_as_if_unpacked_beside_its_files(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "2018").mkdir(parents=True)
    (root / "2018/loose.jpg").write_bytes(jpeg_bytes(1))
    make_zip(root / "2018/trip.zip", {"trip/a.jpg": jpeg_bytes(2), "loose.jpg": jpeg_bytes(3)})
    make_zip(root / "old.zip", {"2018/b.jpg": jpeg_bytes(4)})

    keys = [i.key for i in source(root, archives=True).scan()]

    # 2018/loose.jpg is both a file and a member of 2018/trip.zip: the file is read
    assert keys == ["2018/b.jpg", "2018/loose.jpg", "2018/trip/a.jpg"]
    assert not isinstance(open_source(SourceConfig(path=root)), ZipSource)  # without archives: a folder


def test_a_glob_that_matches_nothing_stops_the_scan(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="no zip archive there"):
        list(source(tmp_path / "takeout-*.zip").scan())


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """How many times each member was opened (a spy on ``ZipFile.open``; the reads stay real)."""
    seen: Counter[str] = Counter()
    real = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: str | zipfile.ZipInfo, *args: object, **kw: object) -> object:
        seen[name if isinstance(name, str) else name.filename] += 1
        return real(self, name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    yield seen


def by_key(emulator: EmulatorThread) -> dict[str, dict[str, object]]:
    return {str(i.metadata[KEY_FIELD]): dict(i.metadata) for i in emulator.images() if i.metadata}


async def test_a_takeout_export_syncs_once_with_its_names_and_a_noop_night_opens_no_member(
    emulator: EmulatorThread, tmp_path: Path, opened: Counter[str]
) -> None:
    exports = tmp_path / "exports"
    takeout(exports)
    template = {"people": "{people}", "taken": "{taken}", "title": "{title}"}
    config = make_config(emulator.base_url, tmp_path, source=exports / "takeout-*.zip", metadata=template)

    report, log = await sync(config)

    assert report.exit_code == 0 and report.added == len(PHOTOS), log
    assert_in_step(config, emulator, PHOTOS)
    got = {k.removeprefix(GP): (m["people"], m["title"]) for k, m in by_key(emulator).items()}
    assert got == {
        "IMG_0001.jpg": ("Lan", "IMG_0001.jpg"),
        "IMG_0001(1).jpg": ("Minh", "IMG_0001.jpg"),
        "IMG_0002.jpg": ("Lan, Minh", "IMG_0002.jpg"),
        "IMG_0003.jpg": ("Hoa", "IMG_0003.jpg"),
        "IMG_0003-edited.jpg": ("Hoa", "IMG_0003.jpg"),
        LONG: ("Binh", LONG),
    }
    assert {m["taken"] for m in by_key(emulator).values()} == {"2019-05-01T08:30:00+00:00"}

    opened.clear()
    since = len(emulator.requests())
    again, log = await sync(config)
    assert again.exit_code == 0 and again.requests == 0, log
    assert opened == Counter()  # the night's no-op read the central directories, no member
    assert len(emulator.requests()) == since


async def test_the_next_export_moving_photos_between_parts_and_one_sidecar_edited_is_one_put(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    takeout(exports)
    config = make_config(emulator.base_url, tmp_path, source=exports / "*.zip", metadata={"who": "{people}"})
    assert (await sync(config))[0].exit_code == 0
    since = len(emulator.requests())

    for part in exports.iterdir():
        part.unlink()
    edited = dict(SIDECARS) | {
        GP + "IMG_0002.jpg.supplemental-metadata.json": sidecar("IMG_0002.jpg", "Tuan")
    }
    everything = PHOTOS | edited
    make_zip(exports / "takeout-20240101-001.zip", dict(list(everything.items())[::2]))  # split otherwise
    make_zip(exports / "takeout-20240101-002.zip", dict(list(everything.items())[1::2]))
    report, log = await sync(config)

    assert report.exit_code == 0 and (report.added, report.metadata_updated) == (0, 1), log
    assert Counter(r.method for r in emulator.requests()[since:]) == {"PUT": 1}
    assert by_key(emulator)[GP + "IMG_0002.jpg"]["who"] == "Tuan"
    assert_in_step(config, emulator, PHOTOS)


async def test_a_damaged_member_is_one_line_and_the_rest_is_synced(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = {f"album/{i}.jpg": jpeg_bytes(i) for i in range(4)}
    make_zip(tmp_path / "old-gallery.zip", files, stored=True)
    damage(tmp_path / "old-gallery.zip", "album/2.jpg")
    config = make_config(emulator.base_url, tmp_path, source=tmp_path / "old-gallery.zip")

    report, log = await sync(config)

    assert (report.added, report.skipped[UNREADABLE]) == (3, 1), log
    lines = [line for line in log.splitlines() if "album/2.jpg" in line]
    assert len(lines) == 1 and "damaged member of old-gallery.zip" in lines[0], log
    assert_in_step(config, emulator, {k: v for k, v in files.items() if k != "album/2.jpg"})
    assert os.path.exists(tmp_path / "old-gallery.zip")


async def test_a_folder_of_files_and_zips_syncs_each_with_its_own_sidecar(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    (root / "scan.jpg").write_bytes(jpeg_bytes(1))
    (root / "scan.jpg.json").write_text(json.dumps({"people": ["An"], "source": "scanner"}))
    make_zip(
        root / "takeout.zip",
        {GP + "IMG_0001.jpg": jpeg_bytes(2), GP + "IMG_0001.jpg.json": sidecar("t", "Lan")},
    )
    config = make_config(
        emulator.base_url, tmp_path, source_section={"path": str(root), "archives": True},
        metadata={"who": "{people}"},
    )  # fmt: skip

    report, log = await sync(config)

    assert report.exit_code == 0 and report.added == 2, log
    meta = by_key(emulator)
    assert (meta["scan.jpg"]["who"], meta["scan.jpg"]["source"]) == (
        "An",
        "scanner",
    )  # a plain sidecar: merged
    assert meta[GP + "IMG_0001.jpg"]["who"] == "Lan" and "photoTakenTime" not in meta[GP + "IMG_0001.jpg"]
    assert (await sync(config))[0].requests == 0
