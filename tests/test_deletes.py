"""The one delete path and the one max-delete guard that sync and reconcile share (engine/deletes.py)."""

from __future__ import annotations

import io

import pytest

from pipeline.api import FaceSearchClient
from pipeline.config import Threshold
from pipeline.emulator import EmulatorThread
from pipeline.engine.deletes import Deleter, guard_deletes
from pipeline.errors import GuardRefused
from pipeline.keys import ImageId
from pipeline.output.reporter import LogReporter

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
            client, 5, LogReporter(io.StringIO()), id_of=lambda i: i, before=before, after=after
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


async def test_a_refused_batch_is_counted_and_reported_and_the_next_is_still_tried(
    emulator: EmulatorThread,
) -> None:
    ids = emulator.seed(7)
    emulator.configure(delete_cap=3)
    log = io.StringIO()
    done: list[list[ImageId]] = []

    async with FaceSearchClient(emulator.base_url, KEY, SECRET) as client:
        deleter = Deleter[ImageId](
            client, 4, LogReporter(log), id_of=lambda i: i, after=done.append, label=lambda c: f"id {c[0]}"
        )
        outcome = await deleter.delete(ids)

    assert (outcome.deleted, outcome.failed) == (3, 4)
    assert done == [ids[4:7]]
    assert [i.id for i in emulator.images()] == ids[0:4]
    assert f"failed id {ids[0]}: delete of 4 image(s)" in log.getvalue()


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
