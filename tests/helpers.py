"""Test helpers for running whole commands against the emulator: configs, runs, invariants."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import commands
from pipeline.config import Config, parse_config
from pipeline.config.profile import ServiceProfile
from pipeline.emulator import EmulatorThread
from pipeline.engine.reconcile import ReconcileOptions
from pipeline.engine.sync import SyncOptions
from pipeline.output.reporter import LogReporter
from pipeline.output.summary import ReconcileReport, SyncReport
from pipeline.state import State, Status


def config_data(
    base_url: str,
    tmp_path: Path,
    *,
    source: Path | None = None,
    source_section: dict[str, Any] | None = None,
    state: Path | None = None,
    api: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The config, as YAML data, for ``tmp_path/archive`` (or ``source``) and ``tmp_path/state.db`` (or
    ``state``) against ``base_url``: short timeouts and back-offs, so faults cost tests little time.

    ``source_section`` replaces the whole ``source:`` section (e.g. ``{"manifest": ...}`` for S3).
    """
    return {
        "api": {
            "base_url": base_url,
            "api_key": "demo-key",
            "api_secret": "demo-secret",
            "timeout": 5,
            "connect_timeout": 2,
            **(api or {}),
        },
        "source": source_section
        if source_section is not None
        else {"path": str(source or tmp_path / "archive")},
        "state": {"path": str(state or tmp_path / "state.db")},
        "limits": {
            "concurrency": 4,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
            "quota_wait": 2,
            **(limits or {}),
        },
        **sections,
    }


def make_config(base_url: str, tmp_path: Path, **options: Any) -> Config:
    """The :func:`config_data` config, parsed as a user's file would be."""
    return parse_config(config_data(base_url, tmp_path, **options), origin=tmp_path / "test.yaml")


def listing_in_order(config: Config, order: str = "oldest_first") -> Config:
    """``config`` with a service profile that says how the service lists (what ``facesync probe``
    measures): a sync then settles lost answers itself from the end (or the head) of the listing."""
    profile = ServiceProfile(
        endpoint=config.api.base_url, measured_at=time.time(), list_order=order, list_metadata=True
    )
    return replace(config, service=profile)


def write_config_file(path: Path, data: dict[str, Any]) -> Path:
    """Write config data as YAML, for a ``facesync`` subprocess."""
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def write_files(root: Path, files: Mapping[str, bytes]) -> None:
    """Write ``{key: bytes}`` under ``root``, making folders as needed."""
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class Captured:
    """A reporter sink whose text the test reads."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.reporter = LogReporter(self.stream)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


async def sync(config: Config, **options: Any) -> tuple[SyncReport, str]:
    out = Captured()
    report = await commands.sync(config, SyncOptions(**options), out.reporter)
    return report, out.text


async def reconcile(config: Config, **options: Any) -> tuple[ReconcileReport, str]:
    out = Captured()
    report = await commands.reconcile(config, ReconcileOptions(**options), out.reporter)
    return report, out.text


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def remote_hashes(emulator: EmulatorThread) -> Counter[str]:
    """The multiset of content hashes stored remotely."""
    return Counter(image.sha256 for image in emulator.images())


def state_rows(config: Config) -> dict[str, Any]:
    with State.open(config.state.path) as state:
        return {row.key: row for row in state.iter_rows()}


def assert_in_step(config: Config, emulator: EmulatorThread, valid: dict[str, bytes]) -> None:
    """The invariant: remote content == the valid local files (no duplicate, none lost, none extra),
    state ids == remote ids, and the state DB is intact."""
    assert remote_hashes(emulator) == Counter(sha(b) for b in valid.values())
    rows = state_rows(config)
    synced = {k: r for k, r in rows.items() if r.status is Status.SYNCED}
    assert set(synced) == set(valid)
    assert sorted(str(r.remote_id) for r in synced.values()) == sorted(str(i.id) for i in emulator.images())
    for key, row in synced.items():
        assert row.sha256 == sha(valid[key])
    with State.open(config.state.path) as state:
        assert state.integrity_ok()


def wait_until(condition: Callable[[], bool], what: str, guard: float = 30.0) -> None:
    """Poll ``condition`` until it holds; ``guard`` seconds is a hang guard, not a timing assertion."""
    deadline = time.monotonic() + guard
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {guard:g} s")
        time.sleep(0.01)


def run_facesync(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` as a user runs it: a real process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A file system of ``size`` (``64k``, ``16m``) of its own, mounted at ``where`` while inside; the
    test is skipped where mounting is not possible (not root, no tmpfs)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
