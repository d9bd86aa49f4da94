"""What archive owners use around sync: search with local paths, retry, metrics for cron, shards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import commands
from pipeline.api import FaceSearchClient
from pipeline.commands.search import search
from pipeline.commands.shard import for_shard, parse_shard
from pipeline.config import KEY_FIELD
from pipeline.emulator import EmulatorThread
from pipeline.engine.reconcile import ReconcileOptions
from pipeline.engine.sync import SyncOptions
from pipeline.errors import ConfigError
from pipeline.output import metrics
from pipeline.sources import shard_of
from pipeline.state import State, Status
from tests.helpers import Captured, config_data, make_config, state_rows, sync, write_config_file, write_files
from tests.imagefactory import jpeg_bytes, zero_by_zero_png


async def test_search_lists_matches_with_their_local_paths(emulator: EmulatorThread, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    write_files(root, {"family/An.jpg": jpeg_bytes(7, size=(128, 128)), "other/x.jpg": jpeg_bytes(8)})
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    (an,) = [i for i in emulator.images() if i.metadata and i.metadata[KEY_FIELD] == "family/An.jpg"]
    query = tmp_path / "query.jpg"
    query.write_bytes(jpeg_bytes(7, size=(96, 96)))  # the same picture at another size

    matches = await search(config, query)

    assert [(m["key"], m["path"], m["known"]) for m in matches] == [
        ("family/An.jpg", str(root / "family/An.jpg"), True)
    ]
    assert matches[0]["id"] == an.id and matches[0]["url"]


async def test_search_marks_a_match_the_state_does_not_know(emulator: EmulatorThread, tmp_path: Path) -> None:
    write_files(tmp_path / "archive", {"a.jpg": jpeg_bytes(1)})
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    (tmp_path / "q.jpg").write_bytes(jpeg_bytes(5))
    async with FaceSearchClient(emulator.base_url, "demo-key", "demo-secret") as client:
        await client.add_image(jpeg_bytes(5))  # added by hand, not by facesync

    matches = await search(config, tmp_path / "q.jpg")

    assert [(m["known"], m["key"]) for m in matches] == [(False, None)]


async def test_search_refuses_a_file_that_is_not_an_image(emulator: EmulatorThread, tmp_path: Path) -> None:
    config = make_config(emulator.base_url, tmp_path)
    (tmp_path / "notes.jpg").write_text("text")
    with pytest.raises(ConfigError, match="not an image"):
        await search(config, tmp_path / "notes.jpg")
    assert emulator.requests() == []


async def test_retry_requeues_rejected_files_and_the_next_sync_sends_them(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    write_files(tmp_path / "archive", {"zero.png": zero_by_zero_png(), "ok.jpg": jpeg_bytes(4)})
    config = make_config(emulator.base_url, tmp_path)
    first, _ = await sync(config)
    assert dict(first.rejected) == {"3": 1}
    assert (await sync(config))[0].requests == 0  # refused files are not retried on their own

    with State.open(config.state.path) as state:
        assert state.requeue([Status.REJECTED]) == 1
    again, _ = await sync(config)

    assert again.requests == 1 and dict(again.rejected) == {"3": 1}


def test_metrics_file_parses_with_the_prometheus_text_format(tmp_path: Path) -> None:
    summary = {
        "added": 3,
        "removed": 1,
        "unchanged": 10,
        "failed": 0,
        "pending": 0,
        "rejected": {"3": 2},
        "skipped": {"empty": 1, 'we"ird\\': 1},
        "requests": 6,
        "throttled": 2,
        "elapsed": 1.5,
        "exit_code": 0,
    }
    path = tmp_path / "textfile" / "facesync.prom"

    metrics.write(path, "sync", summary)

    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("facesync_last_run_exit_code", (("command", "sync"),))] == 0
    assert samples[("facesync_last_run_items", (("command", "sync"), ("outcome", "added")))] == 3
    assert samples[("facesync_last_run_rejected", (("code", "3"), ("command", "sync")))] == 2
    assert samples[("facesync_last_run_skipped", (("command", "sync"), ("reason", 'we"ird\\')))] == 1
    assert samples[("facesync_last_run_throttle_events", (("command", "sync"),))] == 2
    assert families["facesync_last_run_timestamp_seconds"].type == "gauge"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_sync_writes_its_metrics_file_from_the_command_line(emulator: EmulatorThread, tmp_path: Path) -> None:
    write_files(tmp_path / "archive", {"a.jpg": jpeg_bytes(1)})
    config_file = write_config_file(tmp_path / "c.yaml", config_data(emulator.base_url, tmp_path))
    prom = tmp_path / "sync.prom"

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "--config",
            str(config_file),
            "sync",
            "--json",
            "--metrics-file",
            str(prom),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 1
    values = {
        s.name + str(s.labels.get("outcome", "")): s.value
        for f in text_string_to_metric_families(prom.read_text())
        for s in f.samples
    }
    assert values["facesync_last_run_itemsadded"] == 1 and values["facesync_last_run_exit_code"] == 0
    # The timestamp is the run's end to the sub-second, not rounded to six digits (10,000 s in 2026).
    with State.open(tmp_path / "state.db", create=False) as state:
        (run,) = state.last_runs()
    assert run["started_at"] <= values["facesync_last_run_timestamp_seconds"]
    assert abs(values["facesync_last_run_timestamp_seconds"] - run["finished_at"]) < 1.0


def test_metrics_values_are_exact_whatever_their_size(tmp_path: Path) -> None:
    finished = 1_795_670_120.159
    summary = {"added": 1_234_567, "unchanged": 98_765_432_109, "elapsed": 12345.678, "exit_code": 0}

    text = metrics.render("sync", summary, finished=finished)

    values = {
        s.name + str(s.labels.get("outcome", "")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert values["facesync_last_run_timestamp_seconds"] == finished
    assert values["facesync_last_run_itemsadded"] == 1_234_567
    assert values["facesync_last_run_itemsunchanged"] == 98_765_432_109
    assert values["facesync_last_run_duration_seconds"] == 12345.678


async def test_two_shards_together_cover_every_key_exactly_once(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = {f"d{i % 3}/IMG_{i}.jpg": jpeg_bytes(i) for i in range(24)}
    write_files(tmp_path / "archive", files)
    base = make_config(emulator.base_url, tmp_path, limits={"rate": 50})
    seen: list[str] = []

    for index in (0, 1):
        config = for_shard(base, (index, 2))
        assert config.limits.rate == 25
        assert config.state.path.name == f"state.shard-{index}-of-2.db"
        out = Captured()
        report = await commands.sync(config, SyncOptions(shard=(index, 2)), out.reporter)
        assert report.exit_code == 0
        keys = list(state_rows(config))
        assert all(shard_of(k, 2) == index for k in keys)
        seen += keys

    assert sorted(seen) == sorted(files)
    assert len(emulator.images()) == len(files)


def test_shard_arguments_are_checked() -> None:
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


async def test_reconcile_per_shard_touches_only_its_own_images(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = {f"d/IMG_{i}.jpg": jpeg_bytes(i) for i in range(12)}
    write_files(tmp_path / "archive", files)
    base = make_config(emulator.base_url, tmp_path, limits={"max_delete": "100%"})
    shards = [for_shard(base, (i, 2)) for i in (0, 1)]
    for i, config in enumerate(shards):
        assert (await commands.sync(config, SyncOptions(shard=(i, 2)), Captured().reporter)).exit_code == 0
    foreign = emulator.seed(3)  # added by hand: no facesync_key, so shard 0's to settle

    one = await commands.reconcile(shards[1], ReconcileOptions(shard=(1, 2)), Captured().reporter)
    assert (one.exit_code, one.orphans, one.deleted) == (0, 0, 0)
    assert one.listed == sum(1 for k in files if shard_of(k, 2) == 1)
    zero = await commands.reconcile(shards[0], ReconcileOptions(shard=(0, 2)), Captured().reporter)
    assert (zero.exit_code, zero.orphans, zero.deleted) == (0, 3, 3)

    remaining = {str(i.id) for i in emulator.images()}
    assert len(remaining) == len(files) and not remaining & {str(i) for i in foreign}


async def test_reconcile_per_shard_refuses_a_listing_without_metadata(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = {f"{i}.jpg": jpeg_bytes(i) for i in range(6)}
    write_files(tmp_path / "archive", files)
    config = for_shard(make_config(emulator.base_url, tmp_path), (0, 2))
    await commands.sync(config, SyncOptions(shard=(0, 2)), Captured().reporter)
    stored = len(emulator.images())
    assert stored == sum(1 for k in files if shard_of(k, 2) == 0) > 0
    emulator.configure(list_metadata=False)

    report = await commands.reconcile(config, ReconcileOptions(shard=(0, 2)), Captured().reporter)

    assert report.exit_code == 2 and "needs a listing that shows metadata" in (report.error or "")
    assert len(emulator.images()) == stored
