"""A year of nights, compressed: seeded nights of an archive that changes while the service misbehaves.

Each night the archive changes (adds, edits, same-size rewrites with the mtime put back, moves, deletes)
and one fault, or none, is played: lost answers, a throttling storm, an outage, a spent quota, calls
held past ``api.timeout``, a kill -9 part-way, foreign images, or the state file restored from a backup
two nights old. Then the nightly ``sync`` runs (a ``facesync`` process on kill nights), and once a week
a ``reconcile``. The promise checked: **a night that exits 0 leaves the collection in step** — one image
of every valid file, no second copy, the state's rows the same — and at the end, faults off, exactly
once. Even seeds play a service whose listing order is known (a profile, as ``facesync probe`` writes):
the nights heal themselves; odd seeds one whose order is not: they exit 1 until the weekly reconcile.

``make test`` runs one seed over 10 nights; ``make soak`` runs 30 nights of several seeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import signal
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import KEY_FIELD, Config, load_config
from pipeline.config.profile import ServiceProfile, write_profile
from pipeline.emulator import EmulatorThread
from pipeline.state import State, Status
from tests.helpers import config_data, reconcile, sha, sync, write_config_file, write_files
from tests.imagefactory import image_for

from .conftest import FAULTS_OFF

FAULTS = ["none", "none", "lost", "throttle", "outage", "quota", "held", "kill", "foreign", "restore"]


def photo(seed: int, mark: bytes = b"v1") -> bytes:
    """A JPEG with a comment: rewriting the comment changes the content and keeps the size."""
    buf = io.BytesIO()
    image_for(seed, (48, 48)).save(buf, "JPEG", quality=85, comment=b"night-" + mark)
    return buf.getvalue()


class Archive:
    """The files on disk and what they should be."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng, self.files, self.next = root, rng, {}, 0
        self.add(12)

    def add(self, n: int) -> None:
        for _ in range(n):
            self.next += 1
            key = f"y{self.next % 3}/IMG_{self.next:05d}.jpg"
            self.files[key] = photo(self.next)
            write_files(self.root, {key: self.files[key]})

    def change(self) -> None:
        rng, keys = self.rng, sorted(self.files)
        self.add(rng.randint(0, 4))
        if len(keys) > 4:
            edited, same_size, moved, removed = rng.sample(keys, 4)
            self.next += 1
            self.files[edited] = photo(self.next)
            write_files(self.root, {edited: self.files[edited]})
            self.rewrite_in_place(same_size)
            target = f"moved/{moved.rsplit('/', 1)[1]}"
            if target not in self.files and rng.random() < 0.5:
                (self.root / target).parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.root / moved, self.root / target)
                self.files[target] = self.files.pop(moved)
            if rng.random() < 0.5:
                (self.root / removed).unlink()
                del self.files[removed]

    def rewrite_in_place(self, key: str) -> None:
        """New content of the same size, the mtime put back (``exiftool -P``, ``rsync --inplace -t``)."""
        path, data = self.root / key, self.files[key]
        at = data.index(b"night-") + 6
        new = data[:at] + (b"v2" if data[at : at + 2] != b"v2" else b"v3") + data[at + 2 :]
        st = path.stat()
        with path.open("r+b") as out:
            out.write(new)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        self.files[key] = new


def problem(config: Config, emulator: EmulatorThread, files: dict[str, bytes]) -> str | None:
    """What is out of step (None: in step): this archive's images against its valid files, and rows."""
    mine = [i for i in emulator.images() if KEY_FIELD in i.metadata]
    remote, wanted = Counter(i.sha256 for i in mine), Counter(sha(b) for b in files.values())
    if remote != wanted:
        doubled = sum((remote - wanted).values())
        lacking = sum((wanted - remote).values())
        return f"{doubled} extra image(s), {lacking} file(s) without an image"
    with State.open(config.state.path) as state:
        rows = {r.key: r for r in state.iter_rows() if r.status is Status.SYNCED}
        if not state.integrity_ok():
            return "state integrity"
    if set(rows) != set(files) or {str(r.remote_id) for r in rows.values()} != {str(i.id) for i in mine}:
        return "the state's rows are not the collection"
    return None


def back_up(db: Path, to: Path) -> None:
    with sqlite3.connect(db) as src, sqlite3.connect(to) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def restore(db: Path, backup: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    back_up(backup, db)


def fault_knobs(fault: str, rng: random.Random, emulator: EmulatorThread) -> dict[str, Any]:
    if fault == "lost":
        return {"store_then_fail": 0.15, "store_then_drop": 0.15}
    if fault == "throttle":
        return {"throttle_share": 0.3, "retry_after": 0.01}
    if fault == "outage":
        return {"fail_before": 1.0, "fail_status": 503}
    if fault == "quota":
        return {"quota": len(emulator.requests()) + rng.randint(0, 6)}
    if fault == "held":
        return {"stall": 0.15, "stall_seconds": 1.5}
    if fault == "kill":
        return {"delay": 0.05}
    return {}


async def killed_sync(config_file: Path, rng: random.Random) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline",
        "--config",
        str(config_file),
        "sync",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(proc.wait(), rng.uniform(0.3, 1.5))  # the start (imports) is ~0.3 s
    except TimeoutError:
        # A run that ends on its own just as the kill comes is gone already: ProcessLookupError.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
    return await asyncio.wait_for(proc.wait(), 30)


async def nights(emulator: EmulatorThread, tmp_path: Path, seed: int, count: int) -> None:
    rng = random.Random(seed)
    archive = Archive(tmp_path / "archive", rng)
    # An archive of a few dozen files: 10% (the default guard) is one or two removals, which a night of a
    # deleted file after a kill already exceeds; the guard has tests of its own (tests/test_deletes.py).
    limits = {"retries": 3, "quota_wait": 0.5, "max_delete": "50%"}
    data = config_data(emulator.base_url, tmp_path, api={"timeout": 1}, limits=limits)
    config_file = write_config_file(tmp_path / "facesync.yaml", data)
    ordered = seed % 2 == 0
    if ordered:
        profile = ServiceProfile(
            endpoint=emulator.base_url, measured_at=time.time(), list_order="oldest_first"
        )
        write_profile(tmp_path / "service-profile.json", profile)
    config = load_config(config_file)
    db = config.state.path
    lies: list[str] = []
    played: Counter[str] = Counter()
    for night in range(1, count + 1):
        fault = "none" if night == 1 else rng.choice(FAULTS)
        played[fault] += 1
        if night > 1:
            archive.change()
        if fault == "restore" and (tmp_path / f"backup-{night - 2}.db").exists():
            restore(db, tmp_path / f"backup-{night - 2}.db")
        if fault == "foreign":
            emulator.seed(2, {"album": "another application's"})
        emulator.configure(**{**FAULTS_OFF, **fault_knobs(fault, rng, emulator)})
        if fault == "kill":
            code = await killed_sync(config_file, rng)
            log = "(killed process)"
        else:
            report, log = await sync(config)
            code = report.exit_code
        emulator.configure(**FAULTS_OFF)
        if code == 0 and (wrong := problem(config, emulator, archive.files)) is not None:
            lies.append(f"night {night} ({fault}): exit 0 but {wrong}\n{log}")
        if night % 7 == 0:
            await reconcile(config)
        back_up(db, tmp_path / f"backup-{night}.db")
    assert lies == [], "\n".join(lies)
    # At the end, a healthy service: a sync (it settles what it can), a reconcile, a sync: exactly once.
    await sync(config)
    settled, log = await reconcile(config)
    assert settled.exit_code == 0, log
    report, log = await sync(config)
    assert report.exit_code == 0, log
    assert problem(config, emulator, archive.files) is None, (played, log)


async def test_ten_nights_of_mixed_faults_never_exit_0_out_of_step(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    await nights(emulator, tmp_path, seed=2, count=10)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(6))
async def test_thirty_nights_soak(emulator: EmulatorThread, tmp_path: Path, seed: int) -> None:
    await nights(emulator, tmp_path, seed=seed, count=30)
