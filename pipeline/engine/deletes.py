"""The one way remote images are deleted: one max-delete guard, and one batched delete path.

Both engines use both. ``sync`` deletes the images of files gone from the source and the old ids of
replaced images; ``reconcile`` deletes orphans and duplicates. Before a batch is sent its intent is
recorded (``before``), after it succeeds its outcome is (``after``), so a crash at any point loses no
id; a batch that fails is counted and reported, and the next batch is still tried. A batch the
service refuses as too large is split in halves, and the size that works is kept and remembered
(:class:`BatchSize`); an id the service does not know is gone already, which is what was wanted.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pipeline.api import FaceSearchClient
from pipeline.config import Threshold
from pipeline.errors import ConfigError, GuardRefused, Rejected, Retryable, ServiceFailing
from pipeline.keys import ImageId
from pipeline.output.reporter import Reporter
from pipeline.state import State
from pipeline.state.rows import canonical_json

T = TypeVar("T")
#: How many of the refused deletions a guard names before "... and N more".
PREVIEW = 20
#: How many ids a dry run's ``--json`` ``would_delete`` carries (``would_delete_count`` counts them all,
#: ``would_delete_file`` lists them all).
WOULD_DELETE_CAP = 100


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
    first: int = PREVIEW,
) -> None:
    """Refuse (GuardRefused, exit 5) to delete ``count`` images when that is over the max-delete guard.

    The limit is ``--max-delete`` when given, else ``limits.max_delete`` — a count, or a percentage of
    the images facesync accounts for: the synced rows of the state, or the listed collection when that
    is larger (reconcile). ``preview`` pairs (what, detail) are shown as ``verb`` events, up to
    ``first``, before the refusal, so the user sees what would have gone; ``advice`` says how to see
    the rest.
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
            if n == first:
                reporter.note(f"... and {count - first} more")
                break
            reporter.event(verb, name, detail)
    raise GuardRefused(
        f"refusing to delete {count} {what}: over the max-delete guard ({shown}); nothing was deleted. "
        f"{advice}, then rerun with --max-delete {count}"
    )


#: One image a dry run would delete: (id, the key its metadata names, reason, url, metadata JSON) — the
#: url and metadata as the listing showed them (None: not shown), bounded by :func:`listed_metadata`.
Doomed = tuple[ImageId, str | None, str, str | None, str | None]
#: Metadata whose JSON is longer is kept (and shown) as the sorted list of its keys instead ...
METADATA_SHOWN = 4096
#: ... at most this many of them, each at most this long; and a longer url is not kept.
KEYS_SHOWN, KEY_NAME_SHOWN, URL_SHOWN = 100, 100, 2048


def listed_metadata(metadata: dict[str, Any]) -> str:
    """A listed image's metadata as a dry run keeps it: its JSON (sorted keys, ASCII), or, when that is
    longer than :data:`METADATA_SHOWN`, the JSON list of its first keys — so a hostile listing cannot
    make the list of what would be deleted, or the memory that holds its first entries, grow without
    bound."""
    text = canonical_json(metadata)
    return text if len(text) <= METADATA_SHOWN else canonical_json(_names(metadata))


def listed_url(url: str | None) -> str | None:
    """A listed image's url as a dry run keeps it: None when longer than :data:`URL_SHOWN`."""
    return url if url is None or len(url) <= URL_SHOWN else None


def _names(metadata: Mapping[str, Any]) -> list[str]:
    return [name[:KEY_NAME_SHOWN] for name in sorted(metadata)[:KEYS_SHOWN]]


def _bounded(text: str | None) -> str:
    """Stored metadata JSON, bounded as :func:`listed_metadata` bounds it (an adopting run keeps it
    whole), or ``null``."""
    if text is None:
        return "null"
    return text if len(text) <= METADATA_SHOWN else canonical_json(_names(json.loads(text)))


@dataclass
class WouldDelete:
    """What a dry run would delete, streamed once: every item counted, the first :data:`WOULD_DELETE_CAP`
    kept, and with ``file`` every one written as an NDJSON line ``{"id", "key", "reason", "url",
    "metadata"}`` — so its memory is that of the cap, whatever the count.

    ``metadata`` is the object as listed (null when the listing showed none); when its JSON is longer
    than :data:`METADATA_SHOWN`, the list of its keys instead. ``url`` is null when none was listed or it
    is longer than :data:`URL_SHOWN`. The file is written beside itself and renamed into place when
    complete: a run killed part-way leaves no list that looks whole. A file that cannot be written is a
    usage error (exit 2).
    """

    file: Path | None = None
    cap: int = WOULD_DELETE_CAP
    #: The first ``cap`` items.
    first: list[Doomed] = field(default_factory=list)
    count: int = 0

    def take(self, items: Iterable[Doomed]) -> None:
        """Count, keep the first of and (with a file) write every item of ``items``."""
        if self.file is None:
            for item in items:
                self._keep(item)
            return
        part = self.file.with_name(self.file.name + ".partial")
        encode = json.JSONEncoder().encode
        try:
            with part.open("w", encoding="utf-8") as out:
                write = out.write
                for item in items:
                    self._keep(item)
                    head = encode({"id": item[0], "key": item[1], "reason": item[2], "url": item[3]})
                    write(f'{head[:-1]}, "metadata": {_bounded(item[4])}}}\n')  # stored JSON, spliced
            os.replace(part, self.file)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise ConfigError(f"--would-delete-file {self.file}: {exc.strerror or exc}") from None

    def _keep(self, item: Doomed) -> None:
        if self.count < self.cap:
            self.first.append(item)
        self.count += 1

    @property
    def ids(self) -> list[ImageId]:
        return [item[0] for item in self.first]

    def items(self) -> list[dict[str, Any]]:
        """The first items as the file's objects (``--json``'s ``would_delete_items``)."""
        return [
            {"id": i, "key": k, "reason": r, "url": u, "metadata": json.loads(_bounded(m))}
            for i, k, r, u, m in self.first
        ]


@dataclass
class DeleteOutcome:
    """What one pass of deletes did: ids deleted, ids whose DELETE failed."""

    deleted: int = 0
    failed: int = 0


#: Where the most ids one DELETE took is remembered (``State.learned``).
LEARNED = "delete_batch"
#: A refusal that says the call carried too many ids (the API page gives no cap; the client finds it).
_TOO_MANY = re.compile(r"too many|too large|at most|limit|maximum|\bmax\b", re.IGNORECASE)


class BatchSize:
    """How many ids one DELETE carries: ``api.delete_batch``, or fewer once the service refused more.

    A multi-id DELETE refused as too large is split in halves and sent again; the size that works is
    kept for the rest of the run and remembered in the state (:data:`LEARNED`) for the next one.
    """

    def __init__(self, configured: int, state: State | None = None) -> None:
        self.state = state
        learned = state.learned(LEARNED) if state is not None else None
        self.value = min(configured, learned) if isinstance(learned, int) and learned >= 1 else configured

    def refused(self, tried: int) -> None:
        """A DELETE of ``tried`` ids was refused as too large: at most half of it from now on."""
        smaller = max(1, tried // 2)
        if smaller < self.value:
            self.value = smaller
            if self.state is not None:
                self.state.learn(LEARNED, smaller)


def refused_as_too_large(exc: Rejected) -> bool:
    """Whether a refused multi-id DELETE says it carried too many ids (HTTP 413, or HTTP 400 with code 6
    or none, or a message naming a limit) — not that an id is unknown (404)."""
    if exc.http_status == 413 or _TOO_MANY.search(str(exc)):
        return True
    return exc.http_status == 400 and exc.code in (6, None)


@dataclass
class Deleter(Generic[T]):
    """Sends DELETEs for items in batches, each recorded before the next is sent, split when refused."""

    client: FaceSearchClient
    size: BatchSize
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
        """Delete ``items`` batch by batch; a failed batch is counted and reported, the rest still tried.

        :class:`~pipeline.errors.ServiceFailing` (the circuit breaker) stops it: nothing more is sent.
        """
        outcome = DeleteOutcome()
        start = 0
        while start < len(items):
            chunk = list(items[start : start + self.size.value])
            start += len(chunk)
            if self.before is not None:
                await self.before(chunk)
            await self._send(chunk, outcome)
        return outcome

    async def _send(self, chunk: list[T], outcome: DeleteOutcome) -> None:
        """One DELETE of ``chunk``; refused as too large (or naming an unknown id), its halves in turn."""
        try:
            await self.client.delete([self.id_of(item) for item in chunk])
        except ServiceFailing:
            raise
        except Rejected as exc:
            if len(chunk) > 1 and (refused_as_too_large(exc) or exc.http_status == 404):
                if refused_as_too_large(exc):
                    self.size.refused(len(chunk))
                step = min(self.size.value, (len(chunk) + 1) // 2)
                for at in range(0, len(chunk), step):
                    await self._send(chunk[at : at + step], outcome)
                return
            if exc.http_status == 404:  # this one id is unknown: it is gone already, as wanted
                self._done(chunk, outcome)
                return
            self._failed(chunk, outcome, exc)
        except Retryable as exc:
            self._failed(chunk, outcome, exc)
        else:
            self._done(chunk, outcome)

    def _done(self, chunk: list[T], outcome: DeleteOutcome) -> None:
        if self.after is not None:
            self.after(chunk)
        outcome.deleted += len(chunk)

    def _failed(self, chunk: list[T], outcome: DeleteOutcome, exc: Exception) -> None:
        outcome.failed += len(chunk)
        self.reporter.event("failed", self.label(chunk), f"delete of {len(chunk)} image(s): {exc}")
