"""The one way remote images are deleted: one max-delete guard, and one batched delete path.

Both engines use both. ``sync`` deletes the images of files gone from the source and the old ids of
replaced images; ``reconcile`` deletes orphans and duplicates. Before a batch is sent its intent is
recorded (``before``), after it succeeds its outcome is (``after``), so a crash at any point loses no
id; a batch that fails is counted and reported, and the next batch is still tried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pipeline.api import FaceSearchClient
from pipeline.config import Threshold
from pipeline.errors import GuardRefused, Rejected, Retryable
from pipeline.keys import ImageId
from pipeline.output.reporter import Reporter

T = TypeVar("T")
#: How many of the refused deletions a guard names before "... and N more".
PREVIEW = 20


def guard_deletes(
    count: int,
    *,
    threshold: Threshold,
    synced: int,
    listed: int = 0,
    override: int | None = None,
    what: str = "image(s)",
    advice: str = "Check the source",
    preview: Iterable[tuple[str, str]] = (),
    verb: str = "would delete",
    reporter: Reporter | None = None,
) -> None:
    """Refuse (GuardRefused, exit 5) to delete ``count`` images when that is over the max-delete guard.

    The limit is ``--max-delete`` when given, else ``limits.max_delete`` — a count, or a percentage of
    the images facesync accounts for: the synced rows of the state, or the listed collection when that
    is larger (reconcile). ``preview`` pairs (what, detail) are shown as ``verb`` events, up to
    :data:`PREVIEW`, before the refusal, so the user sees what would have gone.
    """
    if count == 0:
        return
    if override is not None:
        limit, shown = override, f"--max-delete {override}"
    else:
        base = max(synced, listed)
        limit = threshold.limit(base)
        of = f"{synced} synced" if base == synced else f"{listed} listed"
        shown = f"limits.max_delete {threshold} of {of} = {limit}"
    if count <= limit:
        return
    if reporter is not None:
        for n, (name, detail) in enumerate(preview):
            if n == PREVIEW:
                reporter.note(f"... and {count - PREVIEW} more")
                break
            reporter.event(verb, name, detail)
    raise GuardRefused(
        f"refusing to delete {count} {what}: over the max-delete guard ({shown}); nothing was deleted. "
        f"{advice}, then rerun with --max-delete {count}"
    )


@dataclass
class DeleteOutcome:
    """What one pass of deletes did: ids deleted, ids whose DELETE failed."""

    deleted: int = 0
    failed: int = 0


@dataclass
class Deleter(Generic[T]):
    """Sends DELETEs for items in batches of ``batch`` ids, each recorded before the next is sent."""

    client: FaceSearchClient
    batch: int
    reporter: Reporter
    #: The remote id of an item.
    id_of: Callable[[T], ImageId]
    #: Awaited before a batch is sent (e.g. rows durably marked ``deleting``).
    before: Callable[[list[T]], Awaitable[None]] | None = None
    #: Called once a batch is confirmed deleted (e.g. rows dropped, tombstones done).
    after: Callable[[list[T]], None] | None = None
    #: How a failed batch is named in the event line.
    label: Callable[[list[T]], str] = lambda chunk: "(images)"

    async def delete(self, items: Sequence[T]) -> DeleteOutcome:
        """Delete ``items`` batch by batch; a failed batch is counted and reported, the rest still tried."""
        outcome = DeleteOutcome()
        for start in range(0, len(items), self.batch):
            chunk = list(items[start : start + self.batch])
            if self.before is not None:
                await self.before(chunk)
            try:
                await self.client.delete([self.id_of(item) for item in chunk])
            except (Retryable, Rejected) as exc:
                outcome.failed += len(chunk)
                self.reporter.event("failed", self.label(chunk), f"delete of {len(chunk)} image(s): {exc}")
                continue
            if self.after is not None:
                self.after(chunk)
            outcome.deleted += len(chunk)
        return outcome
