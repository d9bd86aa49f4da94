"""Scenario 11: random interleavings (Hypothesis state machine) of file changes, syncs, reconciles,
killed syncs (the run task cancelled at a random instant) and fault toggles.

After every settle step — faults off, ``sync``, ``reconcile`` — the invariant holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pipeline.emulator import EmulatorThread
from tests.helpers import make_config, reconcile, sync
from tests.imagefactory import jpeg_bytes, png_bytes

from .conftest import FAULTS_OFF, Watch

NAMES = ["a.jpg", "b.jpg", "album/c.jpg", "album/d.png", "album/deeper/e.jpg", "f.png"]
FAULTS: list[dict[str, Any]] = [
    {"store_then_fail": 0.3},
    {"store_then_drop": 0.2},
    {"fail_before": 0.3},
    {"delay": 0.05},
    {"quota": 3},
    {"stall": 0.2, "stall_seconds": 1.0},
]
#: What a faulty run may exit with: in step, items failing, quota spent.
FAULTY_EXITS = {0, 1, 4}


def content(name: str, seed: int) -> bytes:
    return png_bytes(seed) if name.endswith(".png") else jpeg_bytes(seed)


def machine(emulator: EmulatorThread, watch: Watch, base: Path) -> type[RuleBasedStateMachine]:
    counter = itertools.count()

    class SyncMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            emulator.reset()
            watch.wrong_deletes.clear()  # each example is judged on its own deletes, not an earlier one's
            self.dir = base / f"example-{next(counter)}"
            self.root = self.dir / "archive"
            self.root.mkdir(parents=True)
            self.files: dict[str, bytes] = {}
            watch.expect(self.files)
            self.config = make_config(
                emulator.base_url,
                self.dir,
                api={"timeout": 0.5},
                limits={"max_delete": "100%", "retries": 1, "quota_wait": 0},
            )

        @initialize(seeds=st.lists(st.integers(0, 40), min_size=2, max_size=len(NAMES)))
        def an_archive(self, seeds: list[int]) -> None:
            for name, seed in zip(NAMES, seeds, strict=False):
                self.write_file(name, seed)

        @rule(name=st.sampled_from(NAMES), seed=st.integers(0, 40))
        def write_file(self, name: str, seed: int) -> None:
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self.files[name] = content(name, seed)
            path.write_bytes(self.files[name])
            watch.expect(self.files)

        @precondition(lambda self: bool(self.files))
        @rule(data=st.data())
        def delete_file(self, data: st.DataObject) -> None:
            name = data.draw(st.sampled_from(sorted(self.files)))
            (self.root / name).unlink()
            del self.files[name]
            watch.expect(self.files)

        @rule(fault=st.sampled_from(FAULTS))
        def faults_on(self, fault: dict[str, Any]) -> None:
            emulator.configure(**fault)

        @rule()
        def faults_off(self) -> None:
            emulator.configure(**FAULTS_OFF)

        @rule()
        def run_sync(self) -> None:
            report, log = asyncio.run(sync(self.config))
            assert report.exit_code in FAULTY_EXITS, log

        @rule()
        def run_reconcile(self) -> None:
            report, log = asyncio.run(reconcile(self.config))
            assert report.exit_code in FAULTY_EXITS, log

        @rule(after=st.floats(0.0, 0.3))
        def kill_sync(self, after: float) -> None:
            async def killed() -> None:
                task = asyncio.create_task(sync(self.config))
                await asyncio.sleep(after)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            asyncio.run(killed())

        @rule()
        def settle(self) -> None:
            asyncio.run(watch.settle(self.config, self.files))

        def teardown(self) -> None:
            asyncio.run(watch.settle(self.config, self.files))

    return SyncMachine


def run_machine(emulator: EmulatorThread, watch: Watch, tmp_path: Path, **options: Any) -> None:
    run_state_machine_as_test(
        machine(emulator, watch, tmp_path),
        settings=settings(
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            **options,
        ),
    )


def test_random_interleavings_of_changes_runs_kills_and_faults_always_settle_in_step(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path
) -> None:
    run_machine(emulator, watch, tmp_path, max_examples=15, stateful_step_count=15, derandomize=True)


@pytest.mark.soak
def test_state_machine_soak(emulator: EmulatorThread, watch: Watch, tmp_path: Path) -> None:
    run_machine(emulator, watch, tmp_path, max_examples=60, stateful_step_count=30)
