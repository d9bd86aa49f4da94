"""The one delete path and the one max-delete guard that sync and reconcile share (engine/deletes.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pipeline.api import FaceSearchClient
from pipeline.config import Threshold
from pipeline.emulator import EmulatorThread
from pipeline.engine.deletes import BatchSize, Deleter, guard_deletes
from pipeline.errors import GuardRefused
from pipeline.keys import ImageId
from pipeline.output.reporter import LogReporter
from pipeline.state import State

KEY, SECRET = "demo-key", "demo-secret"


def deletes_sent(emulator: EmulatorThread) -> list[str]:
    return [r.outcome for r in emulator.requests() if r.method == "DELETE"]


async def test_ids_go_in_batches_each_recorded_before_the_next_is_sent(emulator: EmulatorThread) -> None:
    ids = emulator.seed(12)
    seen: list[tuple[str, list[ImageId], int]] = []

    async def before(chunk: list[ImageId]) -> None:
        seen.append(("before", chunk, len(emulator.images())))

    def after(chunk: list[ImageId]) -> None:
        seen.append(("after", chunk, len(emulator.images())))

    async with FaceSearchClient(emulator.base_url, KEY, SECRET) as client:
        deleter = Deleter[ImageId](
            client, BatchSize(5), LogReporter(io.StringIO()), id_of=lambda i: i, before=before, after=after
        )
        outcome = await deleter.delete(ids)

    assert (outcome.deleted, outcome.failed) == (12, 0)
    assert seen == [
        ("before", ids[0:5], 12),
        ("after", ids[0:5], 7),
        ("before", ids[5:10], 7),
        ("after", ids[5:10], 2),
        ("before", ids[10:12], 2),
        ("after", ids[10:12], 0),
    ]


async def test_a_batch_refused_as_too_large_is_halved_and_the_size_that_works_is_remembered(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = emulator.seed(7)
    emulator.configure(delete_cap=3)
    done: list[list[ImageId]] = []

    with State.open(tmp_path / "state.db") as state:
        async with FaceSearchClient(emulator.base_url, KEY, SECRET) as client:
            size = BatchSize(8, state)
            deleter = Deleter[ImageId](
                client, size, LogReporter(io.StringIO()), id_of=lambda i: i, after=done.append
            )
            outcome = await deleter.delete(ids)
        learned = state.learned("delete_batch")

    assert (outcome.deleted, outcome.failed) == (7, 0) and emulator.images() == []
    assert deletes_sent(emulator) == ["rejected", "ok", "ok", "ok"]  # 7 refused, then 3 + 3 + 1
    assert done == [ids[0:3], ids[3:6], ids[6:7]]
    assert size.value == learned == 3
    with State.open(tmp_path / "state.db") as state:  # the next run starts at the size that worked
        assert BatchSize(8, state).value == 3 and BatchSize(2, state).value == 2


async def test_an_unknown_id_is_gone_already_and_a_single_id_that_fails_is_a_real_failure(
    emulator: EmulatorThread,
) -> None:
    ids = emulator.seed(4)
    emulator.configure(delete_unknown="fail")
    log = io.StringIO()
    async with FaceSearchClient(emulator.base_url, KEY, SECRET) as client:
        deleter = Deleter[ImageId](client, BatchSize(10), LogReporter(log), id_of=lambda i: i)
        gone = await deleter.delete([*ids[:2], 999_999, ids[2]])  # the unknown id is isolated by halving
        emulator.configure(fail_before=1.0)
        failing = await deleter.delete([ids[3]])

    assert (gone.deleted, gone.failed) == (4, 0)
    assert (failing.deleted, failing.failed) == (0, 1) and "delete of 1 image(s)" in log.getvalue()
    assert [i.id for i in emulator.images()] == [ids[3]]


@pytest.mark.parametrize(
    ("count", "synced", "listed", "override", "allowed"),
    [
        (10, 100, 0, None, True),  # 10 % of 100 synced
        (11, 100, 0, None, False),
        (11, 100, 110, None, True),  # reconcile: 10 % of the larger, the listing
        (11, 100, 110, 10, False),  # --max-delete wins over the config
        (0, 0, 0, None, True),  # nothing to delete is always allowed
        (1, 0, 0, None, False),  # ... and nothing synced allows nothing
    ],
)
def test_the_guard_allows_up_to_its_share_of_what_facesync_accounts_for(
    count: int, synced: int, listed: int, override: int | None, allowed: bool
) -> None:
    args = {
        "threshold": Threshold(10, percent=True),
        "synced": synced,
        "listed": listed,
        "override": override,
    }
    if allowed:
        guard_deletes(count, **args)  # type: ignore[arg-type]
        return
    with pytest.raises(GuardRefused) as refused:
        guard_deletes(count, **args)  # type: ignore[arg-type]
    assert refused.value.exit_code == 5
    assert f"refusing to delete {count} image(s)" in str(refused.value)
    assert f"rerun with --max-delete {count}" in str(refused.value)


def test_a_refusal_shows_what_would_have_gone_twenty_at_most() -> None:
    log = io.StringIO()
    with pytest.raises(GuardRefused, match=r"limits.max_delete 5 of 40 synced = 5"):
        guard_deletes(
            30,
            threshold=Threshold(5),
            synced=40,
            preview=((f"k{i}", f"remote id {i}") for i in range(30)),
            verb="would remove",
            reporter=LogReporter(log),
        )
    lines = log.getvalue().splitlines()
    assert lines[0] == "facesync: would remove k0: remote id 0"
    assert len([line for line in lines if "would remove" in line]) == 20
    assert lines[-1] == "facesync: ... and 10 more"
