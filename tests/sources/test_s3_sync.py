"""``facesync sync`` end to end from an S3 source: moto on 127.0.0.1, the emulator, real SQLite.

The bucket holds valid images under awkward keys (spaces, unicode, ``+``, commas) and broken objects;
the report is laid out as AWS writes it (``manifest.json`` + gzipped CSV data files with a
``fileSchema``, keys URL-encoded form-style, a delete marker and an old version mixed in).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from pipeline import commands
from pipeline.config import Config, SourceConfig
from pipeline.emulator import EmulatorThread
from pipeline.sources import Source, open_source
from pipeline.sources.s3 import S3Source
from pipeline.state import State, Status
from tests.helpers import assert_in_step, make_config, remote_hashes, state_rows, sync
from tests.imagefactory import jpeg_bytes, png_bytes

from .conftest import new_bucket
from .s3fixtures import Row, inventory

MAX_IMAGE_BYTES = 5_000

#: The valid images, by object key: every key needs URL-encoding in the inventory CSV.
VALID = {
    "2024/05/plain.jpg": jpeg_bytes(1),
    "2024/05/with space.jpg": jpeg_bytes(2),
    "2024/05/ünïcødé 写真.png": png_bytes(3),
    "2024/06/plus+sign.jpg": jpeg_bytes(4),
    "Album, with comma/IMG 0005.jpeg": jpeg_bytes(5),
    "UPPER/IMG_0006.JPG": jpeg_bytes(6),
}
_GOOD = jpeg_bytes(99)
#: Objects that must each end with their own status, and no upload.
BROKEN = {
    "broken/empty.jpg": b"",
    "broken/notes.jpg": b"this is text, not a photo\n",
    "broken/truncated.jpg": _GOOD[: len(_GOOD) // 3],
    "broken/huge.jpg": jpeg_bytes(98, size=(400, 400)),
}
#: Listed by the inventory, never an item (not an image extension).
OTHER = {"readme.txt": b"not considered: wrong extension"}


@dataclass
class Bucket:
    """A photo bucket and a reports bucket in moto; ``objects`` is what the photo bucket holds now."""

    s3: Any
    endpoint: str
    name: str
    reports: str
    objects: dict[str, bytes] = field(default_factory=dict)

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.name, Key=key, Body=data)
        self.objects[key] = data

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.name, Key=key)
        del self.objects[key]

    def head(self, key: str) -> tuple[int, str, str]:
        """(size, bare ETag, LastModified as an inventory writes it) of one object."""
        head = self.s3.head_object(Bucket=self.name, Key=key)
        modified = head["LastModified"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return int(head["ContentLength"]), head["ETag"].strip('"'), modified

    def publish(self) -> tuple[str, dict[str, Any], dict[str, bytes]]:
        """Write an inventory of the bucket as it is now into the reports bucket.

        Returns the manifest's ``s3://`` URI, the manifest and the data files (to damage them).
        Rows are spread over two data files out of key order, with a delete marker and an old version.
        """
        rows = [Row(self.name, key, *self.head(key), version_id="v2") for key in reversed(self.objects)]
        older, marker = "2024-01-01T00:00:00.000Z", "2024-04-30T12:00:00.000Z"
        rows.insert(1, Row(self.name, rows[0].key, 10, "0" * 32, older, "v1", is_latest=False))
        rows.append(Row(self.name, "gone/deleted.jpg", None, None, marker, "v9", is_delete_marker=True))
        report = inventory(self.name, self.reports, [rows[::2], rows[1::2]])
        return report.upload(self.s3), report.manifest, report.files

    def config(self, emulator: EmulatorThread, tmp_path: Path, manifest: str, **source: Any) -> Config:
        return make_config(
            emulator.base_url,
            tmp_path,
            source_section={"manifest": manifest, "endpoint_url": self.endpoint, **source},
            limits={"max_image_bytes": MAX_IMAGE_BYTES, "max_delete": "100%"},
        )


@pytest.fixture
def bucket(s3: Any, s3_endpoint: str) -> Bucket:
    """The photo bucket with every valid image, the broken objects and a non-image."""
    made = Bucket(s3, s3_endpoint, new_bucket(s3), new_bucket(s3))
    for key, data in {**VALID, **BROKEN, **OTHER}.items():
        made.put(key, data)
    assert max(len(b) for b in VALID.values()) < MAX_IMAGE_BYTES < len(BROKEN["broken/huge.jpg"])
    return made


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[S3Source]:
    """Every source ``facesync sync`` opens, to read its download counters after the run."""
    made: list[S3Source] = []

    def capture(config: SourceConfig, *args: Any, **kwargs: Any) -> Source:
        source = open_source(config, *args, **kwargs)
        assert isinstance(source, S3Source)
        made.append(source)
        return source

    monkeypatch.setattr(commands.runs, "open_source", capture)
    return made


def deletes(emulator: EmulatorThread) -> int:
    return sum(1 for r in emulator.requests() if r.method == "DELETE")


async def first_sync(config: Config, emulator: EmulatorThread) -> None:
    """Sync the bucket into an empty service: every valid object stored, each broken one with its status."""
    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert report.added == len(VALID)
    assert dict(report.skipped) == {"empty": 1, "not_an_image": 1, "too_large": 1, "truncated": 1}
    assert dict(report.rejected) == {}
    assert_in_step(config, emulator, VALID)
    rows = state_rows(config)
    for key, reason in [
        ("broken/empty.jpg", "empty"),
        ("broken/notes.jpg", "not_an_image"),
        ("broken/huge.jpg", "too_large"),
        ("broken/truncated.jpg", "truncated"),
    ]:
        assert rows[key].status is Status.SKIPPED, key
        assert reason in (rows[key].message or ""), key
    assert "readme.txt" not in rows


# ---- an S3 Inventory report ---------------------------------------------------------------------------


async def test_first_sync_stores_every_valid_object_and_gives_broken_ones_their_status(
    emulator: EmulatorThread, tmp_path: Path, bucket: Bucket, opened: list[S3Source]
) -> None:
    manifest, _, _ = bucket.publish()
    config = bucket.config(emulator, tmp_path, manifest)

    await first_sync(config, emulator)

    # Keys arrive decoded (the CSV had them URL-encoded), in the metadata and in the state.
    assert sorted(i.metadata["facesync_key"] for i in emulator.images()) == sorted(VALID)
    rows = state_rows(config)
    assert {k: rows[k].etag for k in VALID} == {k: bucket.head(k)[1] for k in VALID}
    # The object over the size limit was refused on the inventory's Size, never fetched.
    [source] = opened
    assert source.downloads == len(VALID) + 3
    fetched = {**VALID, **BROKEN}
    del fetched["broken/huge.jpg"]
    assert source.bytes_downloaded == sum(len(b) for b in fetched.values())


async def test_second_sync_sends_no_request_and_downloads_nothing(
    emulator: EmulatorThread, tmp_path: Path, bucket: Bucket, opened: list[S3Source]
) -> None:
    manifest, _, _ = bucket.publish()
    config = bucket.config(emulator, tmp_path, manifest)
    assert (await sync(config))[0].exit_code == 0
    before = len(emulator.requests())

    second, log = await sync(config)

    assert second.exit_code == 0, log
    assert second.requests == 0
    assert len(emulator.requests()) == before
    assert (second.added, second.replaced, second.retouched, second.removed) == (0, 0, 0, 0)
    assert second.unchanged == len(VALID) + len(BROKEN)
    assert (opened[1].downloads, opened[1].bytes_downloaded) == (0, 0)
    assert_in_step(config, emulator, VALID)


async def test_changed_etag_reuploads_exactly_that_object_and_deletes_its_old_version(
    emulator: EmulatorThread, tmp_path: Path, bucket: Bucket, opened: list[S3Source]
) -> None:
    manifest, _, _ = bucket.publish()
    config = bucket.config(emulator, tmp_path, manifest)
    assert (await sync(config))[0].exit_code == 0
    edited = "2024/05/with space.jpg"
    old_ids = {k: r.remote_id for k, r in state_rows(config).items()}
    old_etag = state_rows(config)[edited].etag

    bucket.put(edited, jpeg_bytes(2002))
    manifest, _, _ = bucket.publish()
    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert (report.added, report.replaced, report.removed) == (0, 1, 0)
    assert opened[1].downloads == 1
    rows = state_rows(config)
    assert rows[edited].etag != old_etag
    assert rows[edited].remote_id != old_ids[edited]
    assert str(old_ids[edited]) not in {str(i.id) for i in emulator.images()}
    others = [k for k in VALID if k != edited]
    assert {k: rows[k].remote_id for k in others} == {k: old_ids[k] for k in others}
    valid = {**VALID, edited: bucket.objects[edited]}
    assert_in_step(config, emulator, valid)
    with State.open(config.state.path) as state:
        assert state.tombstones() == []


async def test_object_rewritten_after_the_report_is_skipped_as_changed_until_the_next_report(
    emulator: EmulatorThread, tmp_path: Path, bucket: Bucket, opened: list[S3Source]
) -> None:
    manifest, _, _ = bucket.publish()
    config = bucket.config(emulator, tmp_path, manifest)
    assert (await sync(config))[0].exit_code == 0
    edited = "2024/05/plain.jpg"
    old_id = state_rows(config)[edited].remote_id
    stored = remote_hashes(emulator)

    bucket.put(edited, jpeg_bytes(1001))
    bucket.publish()  # this report names the second version...
    bucket.put(edited, jpeg_bytes(1002))  # ...which is gone again by the time the sync reads it
    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert dict(report.skipped) == {"changed": 1}
    assert (report.added, report.replaced) == (0, 0)
    assert opened[1].bytes_downloaded == 0  # If-Match: a 412, not a download
    assert remote_hashes(emulator) == stored  # the old version stays until a report names the new one
    row = state_rows(config)[edited]
    assert row.status is Status.SKIPPED and "changed" in (row.message or "")

    bucket.publish()
    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert (report.added, report.replaced, report.removed) == (0, 1, 0)
    assert str(old_id) not in {str(i.id) for i in emulator.images()}
    assert_in_step(config, emulator, {**VALID, edited: bucket.objects[edited]})
    with State.open(config.state.path) as state:
        assert state.tombstones() == []


async def test_object_deleted_after_the_inventory_is_skipped_as_vanished_and_the_run_exits_0(
    emulator: EmulatorThread, tmp_path: Path, bucket: Bucket
) -> None:
    manifest, _, _ = bucket.publish()
    gone = "2024/06/plus+sign.jpg"
    bucket.delete(gone)
    config = bucket.config(emulator, tmp_path, manifest)

    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert report.skipped["vanished"] == 1
    assert report.failed == 0
    row = state_rows(config)[gone]
    assert row.status is Status.SKIPPED and "vanished" in (row.message or "")
    assert row.remote_id is None
    valid = {k: b for k, b in VALID.items() if k != gone}
    assert_in_step(config, emulator, valid)

    # The next report no longer lists it: the row goes, and nothing remote is touched for it.
    manifest, _, _ = bucket.publish()
    before = len(emulator.requests())
    report, log = await sync(config)
    assert report.exit_code == 0, log
    assert gone not in state_rows(config)
    assert len(emulator.requests()) == before
    assert_in_step(config, emulator, valid)


# ---- a key list ---------------------------------------------------------------------------------------


async def test_key_list_manifest_syncs_the_same_as_an_inventory(
    emulator: EmulatorThread, tmp_path: Path, bucket: Bucket, opened: list[S3Source]
) -> None:
    keys = sorted(bucket.objects, reverse=True)  # any order: the scan sorts
    lines = ["# every object of the photo bucket", ""]
    for n, key in enumerate(keys):
        if n % 3 == 0:
            lines.append(f"s3://{bucket.name}/{key}")
        elif n % 3 == 1:
            lines.append(key)  # a bare key, under source.bucket
        else:
            size, etag, _ = bucket.head(key)
            lines.append(f"{key}\t{size}\t{etag}")  # the fast form: no HeadObject
    listing = tmp_path / "keys.txt"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = bucket.config(emulator, tmp_path, str(listing), bucket=bucket.name)

    await first_sync(config, emulator)

    before = len(emulator.requests())
    second, log = await sync(config)

    assert second.exit_code == 0, log
    assert second.requests == 0 and len(emulator.requests()) == before
    assert second.unchanged == len(VALID) + len(BROKEN)
    assert (opened[1].downloads, opened[1].bytes_downloaded) == (0, 0)


# ---- a damaged report ---------------------------------------------------------------------------------


async def test_data_file_with_bad_md5_fails_the_run_naming_it_and_deletes_nothing(
    emulator: EmulatorThread, tmp_path: Path, bucket: Bucket
) -> None:
    manifest, _, _ = bucket.publish()
    config = bucket.config(emulator, tmp_path, manifest)  # max_delete 100%: only the check protects
    assert (await sync(config))[0].exit_code == 0
    synced = {k: r.remote_id for k, r in state_rows(config).items() if r.status is Status.SYNCED}
    assert len(synced) == len(VALID)
    images_before, deletes_before = remote_hashes(emulator), deletes(emulator)

    # A new report whose second data file was replaced (same size in the manifest, wrong MD5): read
    # as it is, it would list almost nothing, and every synced image would look removed.
    manifest, doc, files = bucket.publish()
    victim = doc["files"][1]["key"]
    damaged = gzip.compress(f'"{bucket.name}","x.jpg","","true","false","1","","e"\n'.encode(), mtime=0)
    damaged = damaged.ljust(doc["files"][1]["size"], b"\0")[: doc["files"][1]["size"]]
    assert damaged != files[victim]
    bucket.s3.put_object(Bucket=bucket.reports, Key=victim, Body=damaged)

    report, log = await sync(config)

    assert report.exit_code == 1, log
    assert report.error is not None
    assert f"s3://{bucket.reports}/{victim}" in report.error and "MD5" in report.error
    assert (report.added, report.replaced, report.removed) == (0, 0, 0)
    assert deletes(emulator) == deletes_before
    assert remote_hashes(emulator) == images_before
    rows = state_rows(config)
    assert {k: r.remote_id for k, r in rows.items() if r.status is Status.SYNCED} == synced
    assert_in_step(config, emulator, VALID)
