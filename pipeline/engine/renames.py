"""Renames: a new key whose content a removed key had is a move — one PUT, no upload, no delete.

During the march a new file whose sha256 the state already holds (synced) is held back, because
whether it is a move or a copy is known only once every removal is known (the march has ended).
Then :func:`pair_moves` pairs each held file with a removed row of the same content; the pairs are
moved (:func:`apply_moves`), the rest are copies and are uploaded like any new file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from pipeline.engine.operations import Operations
from pipeline.engine.plan import Action, Planned
from pipeline.state import Row, Status


@dataclass
class Moves:
    """What the held-back files turned out to be."""

    #: (the new file, the removed row whose image it takes over)
    moves: list[tuple[Planned, Row]] = field(default_factory=list)
    #: New files whose content no removed row had: copies, to upload.
    copies: list[Planned] = field(default_factory=list)
    #: The removals still to delete once the moved rows are taken out.
    removals: list[Row] = field(default_factory=list)


def pair_moves(held: list[tuple[Planned, str]], removals: list[Row]) -> Moves:
    """Pair each held file (with its sha256) with a removed synced row of that content; pure."""
    gone: dict[str, list[Row]] = {}
    for r in removals:
        if r.status is Status.SYNCED and r.sha256 is not None:
            gone.setdefault(r.sha256, []).append(r)
    out = Moves()
    taken: set[str] = set()
    for p, sha in held:
        candidates = gone.get(sha)
        if not candidates or p.item is None:
            out.copies.append(p)
            continue
        previous = candidates.pop()
        taken.add(previous.key)
        out.moves.append((p, previous))
    out.removals = [r for r in removals if r.key not in taken]
    return out


async def apply_moves(moves: list[tuple[Planned, Row]], ops: Operations) -> None:
    """Move each row to its new key (durably, keeping its remote id), then PUT its new metadata.

    The move is committed before the PUT: a crash in between loses no id, and the stale metadata
    (``meta_hash`` None) is sent by the next run. Fatal and QuotaSpent propagate to the engine.
    """
    for p, previous in moves:
        assert p.item is not None
        moved = replace(previous, key=p.item.key, meta_hash=None, updated_at=time.time())
        await ops.writer.commit(put=[moved], delete=[previous.key])
        await ops.retag.update_metadata(
            Planned(Action.METADATA, moved.key, p.item, moved), renamed_from=previous.key
        )
