"""The S3 source against a real S3-compatible server (moto) on 127.0.0.1, and its pure parsing."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import SourceConfig
from pipeline.errors import ConfigError, ScanError, Skipped
from pipeline.sources import CHANGED, EMPTY, TOO_LARGE, VANISHED, SourceItem, key_order
from pipeline.sources.s3 import S3Source
from pipeline.sources.s3_manifest import (
    Entry,
    decode_key,
    parse_key_line,
    parse_timestamp_ns,
    sorted_unique,
)

from .conftest import new_bucket
from .s3fixtures import Inventory, Row, image_bytes, inventory

MODIFIED = "2024-04-30T12:00:00.000Z"
MODIFIED_NS = parse_timestamp_ns(MODIFIED)

#: The live objects of the archive, by key (several need URL-encoding in the CSV).
LIVE = {
    "a/plain.jpg": 1,
    "b/with space.jpg": 2,
    "c/ünïcødé 写真.png": 3,
    "d/plus+sign.jpg": 4,
    "e/versioned.jpg": 5,
    "F/UPPER.JPG": 6,
    "Z/last, with comma.jpeg": 7,
}


@dataclass
class Archive:
    """A bucket of images, an inventory report of it, and what the scan must yield."""

    bucket: str
    reports: str
    report: Inventory
    etags: dict[str, str]
    contents: dict[str, bytes]

    def expected(self) -> list[SourceItem]:
        items = [SourceItem(k, len(self.contents[k]), MODIFIED_NS, self.etags[k]) for k in LIVE]
        return sorted(items, key=lambda item: key_order(item.key))


@pytest.fixture
def archive(s3: Any) -> Archive:
    bucket, reports = new_bucket(s3), new_bucket(s3)
    etags: dict[str, str] = {}
    contents: dict[str, bytes] = {}
    for key, seed in [*LIVE.items(), ("notes.txt", 99)]:
        data = image_bytes(seed, "PNG" if key.endswith(".png") else "JPEG")
        contents[key] = data
        etags[key] = s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')

    def row(key: str, **kw: Any) -> Row:
        return Row(bucket, key, len(contents[key]), etags[key], MODIFIED, **kw)

    # Two data files, deliberately out of order across (and within) files.
    first = [
        row("e/versioned.jpg", version_id="v2"),
        Row(bucket, "e/versioned.jpg", 10, "0" * 32, "2024-01-01T00:00:00.000Z", "v1", is_latest=False),
        row("c/ünïcødé 写真.png"),
        Row(bucket, "old/deleted.jpg", None, None, MODIFIED, "v9", is_delete_marker=True),
        row("notes.txt"),
        row("Z/last, with comma.jpeg"),
    ]
    second = [row("d/plus+sign.jpg"), row("a/plain.jpg"), row("F/UPPER.JPG"), row("b/with space.jpg")]
    report = inventory(bucket, reports, [first, second])
    return Archive(bucket, reports, report, etags, contents)


@pytest.fixture
async def sources() -> AsyncIterator[list[S3Source]]:
    """Sources made by a test, closed after it."""
    made: list[S3Source] = []
    yield made
    for source in made:
        await source.close()


@pytest.fixture
def make_source(sources: list[S3Source]) -> Any:
    def make(manifest: str | Path, **kw: Any) -> S3Source:
        source = S3Source(SourceConfig(manifest=str(manifest), **kw))
        sources.append(source)
        return source

    return make


async def scan(source: S3Source) -> list[SourceItem]:
    """As the engine does: off the event loop."""
    return await asyncio.to_thread(lambda: list(source.scan()))


# ---- scan ---------------------------------------------------------------------------------------------


async def test_local_manifest_yields_latest_live_objects_sorted_with_decoded_keys(
    archive: Archive, make_source: Any, tmp_path: Path
) -> None:
    manifest = archive.report.write_local(tmp_path)
    source = make_source(manifest)
    assert await scan(source) == archive.expected()
    assert source.scan_errors == []
    assert source.description == f"S3 manifest {manifest}"


async def test_s3_manifest_reads_data_files_from_the_destination_bucket(
    archive: Archive, make_source: Any, s3: Any
) -> None:
    uri = archive.report.upload(s3)
    assert await scan(make_source(uri)) == archive.expected()


async def test_local_manifest_without_local_data_files_reads_them_from_s3(
    archive: Archive, make_source: Any, s3: Any, tmp_path: Path
) -> None:
    archive.report.upload(s3)
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(archive.report.manifest_bytes())
    assert await scan(make_source(manifest)) == archive.expected()


async def test_external_merge_sort_gives_the_same_listing(
    archive: Archive, s3: Any, sources: list[S3Source]
) -> None:
    uri = archive.report.upload(s3)
    source = S3Source(SourceConfig(manifest=uri), sort_buffer=2)
    sources.append(source)
    assert await scan(source) == archive.expected()


async def test_filters_apply_to_object_keys(archive: Archive, make_source: Any, tmp_path: Path) -> None:
    manifest = archive.report.write_local(tmp_path)
    source = make_source(manifest, include=("[a-eF]/*",), exclude=("b/*",), extensions=(".jpg", ".png"))
    keys = [item.key for item in await scan(source)]
    assert keys == ["F/UPPER.JPG", "a/plain.jpg", "c/ünïcødé 写真.png", "d/plus+sign.jpg", "e/versioned.jpg"]


async def test_data_file_with_bad_md5_is_a_scan_error_naming_it(
    archive: Archive, make_source: Any, tmp_path: Path
) -> None:
    report = archive.report
    victim = report.manifest["files"][1]["key"]
    report.files[victim] = gzip.compress(b'"x","y.jpg","","true","false","1","","e"\n', mtime=0)
    report.manifest["files"][1]["size"] = len(report.files[victim])
    source = make_source(report.write_local(tmp_path))
    with pytest.raises(ScanError, match=r"part-0001\.csv\.gz.*MD5"):
        await scan(source)


async def test_truncated_data_file_is_a_scan_error_not_an_empty_archive(
    archive: Archive, make_source: Any, s3: Any
) -> None:
    report = archive.report
    victim = report.manifest["files"][0]["key"]
    report.files[victim] = report.files[victim][:-12]
    with pytest.raises(ScanError, match=r"part-0000\.csv\.gz"):
        await scan(make_source(report.upload(s3)))


async def test_orc_inventory_is_a_config_error(archive: Archive, make_source: Any, tmp_path: Path) -> None:
    orc = inventory(archive.bucket, archive.reports, [[]], file_format="ORC")
    with pytest.raises(
        ConfigError, match="S3 Inventory format ORC is not supported yet \\(use CSV\\)"
    ) as err:
        await scan(make_source(orc.write_local(tmp_path)))
    assert err.value.exit_code == 2


async def test_missing_manifest_is_a_scan_error(s3: Any, make_source: Any) -> None:
    bucket = new_bucket(s3)
    with pytest.raises(ScanError, match="not found"):
        await scan(make_source(f"s3://{bucket}/nowhere/manifest.json"))


# ---- key lists ----------------------------------------------------------------------------------------


async def test_key_list_yields_the_same_items_as_the_inventory(
    archive: Archive, make_source: Any, s3: Any, tmp_path: Path
) -> None:
    keys = list(LIVE)
    lines = ["# photos to sync", ""]
    lines += [f"s3://{archive.bucket}/{k}" for k in keys[:3]]
    lines += keys[3:5]  # bare keys, under source.bucket
    lines += [f"{k}\t{len(archive.contents[k])}\t{archive.etags[k]}" for k in keys[5:]]  # the fast form
    lines += ["gone/never-existed.jpg", keys[0]]  # missing (dropped), and a duplicate
    listing = tmp_path / "keys.txt"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")

    items = await scan(make_source(listing, bucket=archive.bucket))
    expected = archive.expected()
    assert [(i.key, i.size, i.etag) for i in items] == [(i.key, i.size, i.etag) for i in expected]
    assert all(i.mtime_ns > 0 for i in items if i.key in keys[:5])

    s3.put_object(Bucket=archive.reports, Key="lists/keys.txt", Body=listing.read_bytes())
    again = await scan(make_source(f"s3://{archive.reports}/lists/keys.txt", bucket=archive.bucket))
    assert again == items


async def test_key_list_over_several_buckets_prefixes_keys_with_the_bucket(
    archive: Archive, make_source: Any, s3: Any, tmp_path: Path
) -> None:
    other = new_bucket(s3)
    s3.put_object(Bucket=other, Key="x.jpg", Body=image_bytes(50))
    listing = tmp_path / "keys.txt"
    listing.write_text(f"s3://{other}/x.jpg\ns3://{archive.bucket}/a/plain.jpg\n", encoding="utf-8")
    source = make_source(listing)
    items = await scan(source)
    assert [i.key for i in items] == sorted(
        [f"{other}/x.jpg", f"{archive.bucket}/a/plain.jpg"], key=key_order
    )
    data = {i.key: await source.read(i, 1 << 20) for i in items}
    assert data[f"{other}/x.jpg"] == image_bytes(50)


async def test_bare_key_without_bucket_is_a_config_error(make_source: Any, tmp_path: Path) -> None:
    listing = tmp_path / "keys.txt"
    listing.write_text("a/plain.jpg\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"source\.bucket"):
        await scan(make_source(listing))


# ---- read ---------------------------------------------------------------------------------------------


async def test_concurrent_reads_return_the_object_bytes(
    archive: Archive, make_source: Any, tmp_path: Path
) -> None:
    source = make_source(archive.report.write_local(tmp_path))
    items = await scan(source)
    got = await asyncio.gather(*(source.read(item, 1 << 20) for item in items))  # one client, shared
    assert got == [archive.contents[item.key] for item in items]
    assert source.downloads == len(items)
    assert source.bytes_downloaded == sum(len(archive.contents[i.key]) for i in items)


async def test_object_deleted_after_the_inventory_is_skipped_as_vanished(
    archive: Archive, make_source: Any, s3: Any, tmp_path: Path
) -> None:
    source = make_source(archive.report.write_local(tmp_path))
    item = (await scan(source))[0]
    s3.delete_object(Bucket=archive.bucket, Key=item.key)
    with pytest.raises(Skipped) as err:
        await source.read(item, 1 << 20)
    assert (err.value.reason, err.value.detail) == (VANISHED, "deleted since the inventory was written")
    assert source.bytes_downloaded == 0


async def test_object_changed_after_the_inventory_is_skipped_as_changed(
    archive: Archive, make_source: Any, s3: Any, tmp_path: Path
) -> None:
    source = make_source(archive.report.write_local(tmp_path))
    item = (await scan(source))[0]
    s3.put_object(Bucket=archive.bucket, Key=item.key, Body=image_bytes(1234))
    with pytest.raises(Skipped) as err:
        await source.read(item, 1 << 20)
    assert err.value.reason == CHANGED
    assert source.bytes_downloaded == 0


async def test_object_over_max_bytes_is_skipped_without_downloading_it(
    archive: Archive, make_source: Any, tmp_path: Path
) -> None:
    source = make_source(archive.report.write_local(tmp_path))
    item = (await scan(source))[0]
    with pytest.raises(Skipped) as err:
        await source.read(item, item.size - 1)
    assert err.value.reason == TOO_LARGE
    assert source.downloads == 0
    # An inventory without Size/ETag: the cap falls to Content-Length, still before any body is read.
    bare = replace(item, size=0, etag=None)
    with pytest.raises(Skipped) as err:
        await source.read(bare, item.size - 1)
    assert err.value.reason == TOO_LARGE
    assert source.bytes_downloaded == 0


async def test_empty_object_is_skipped_as_empty(s3: Any, make_source: Any, tmp_path: Path) -> None:
    bucket = new_bucket(s3)
    etag = s3.put_object(Bucket=bucket, Key="blank.jpg", Body=b"")["ETag"]
    listing = tmp_path / "keys.txt"
    listing.write_text(f"s3://{bucket}/blank.jpg\n", encoding="utf-8")
    source = make_source(listing)
    [item] = await scan(source)
    assert (item.size, item.etag) == (0, etag.strip('"'))
    with pytest.raises(Skipped) as err:
        await source.read(item, 1 << 20)
    assert err.value.reason == EMPTY


async def test_s3_items_have_no_sidecar_to_read(archive: Archive, make_source: Any, tmp_path: Path) -> None:
    source = make_source(archive.report.write_local(tmp_path))
    item = (await scan(source))[0]
    assert item.sidecar is None
    with pytest.raises(ValueError, match="S3 sources have no sidecars"):
        await source.read_sidecar(item)


# ---- pure parsing -------------------------------------------------------------------------------------


def test_inventory_keys_are_decoded_form_style() -> None:
    assert decode_key("b/with+space.jpg") == "b/with space.jpg"
    assert decode_key("d/plus%2Bsign.jpg") == "d/plus+sign.jpg"
    assert decode_key("c/%C3%BCn%C3%AF.png") == "c/ünï.png"


def test_key_lines() -> None:
    assert parse_key_line("# note\n", None, "k") is None
    assert parse_key_line("   \n", None, "k") is None
    assert parse_key_line("s3://b/x/y z.jpg\n", None, "k") == Entry("b", "x/y z.jpg", None, 0, None)
    assert parse_key_line('x.jpg\t12\t"abc"\n', "b", "k") == Entry("b", "x.jpg", 12, 0, "abc")
    with pytest.raises(ScanError):
        parse_key_line("x.jpg\ttwelve\tabc", "b", "k")


def test_sorted_unique_spills_and_keeps_the_newest_of_duplicates() -> None:
    entries = [Entry("b", f"k{n % 7}", n, n, None) for n in range(30)]
    merged = list(sorted_unique(entries, buffer=4))
    assert [e.key for e in merged] == [f"k{n}" for n in range(7)]
    assert [e.mtime_ns for e in merged] == [28, 29, 23, 24, 25, 26, 27]
