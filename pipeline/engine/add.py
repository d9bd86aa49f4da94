"""An add whose intent is durable: the request sent, and how it ended recorded on the row, in the
state's unsettled table and in the report.

The second half of an upload (:mod:`pipeline.engine.operations` reads, checks and hashes the file and
commits the intent first). What an ending proves decides the token's unsettled entry: only a clean
answer (one copy) or a refusal of a call never lost (none) settles it; anything that may have stored
the image leaves it for a listing to settle (``engine/settle.py``, reconcile). What stops the run
(bad credentials, a spent quota, a failing service) is raised to the engine with the row put back as
it was, except an add the failing service may have stored, which stays ``uploading``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from pipeline.api import RemoteImage
from pipeline.engine.plan import Planned
from pipeline.engine.retag import refusal_code
from pipeline.engine.runs import RunContext
from pipeline.engine.transform import Transformer
from pipeline.errors import AuthError, PipelineError, QuotaSpent, Rejected, Retryable, ServiceFailing
from pipeline.output.summary import SyncReport
from pipeline.state import Row, Status, Tombstone, Writer


def maybe_stored(exc: PipelineError) -> bool:
    """Whether an add that ended in ``exc`` may have stored its image all the same: it was sent and its
    answer lost, on the last attempt or an earlier one."""
    return bool(getattr(exc, "sent", False) or exc.lost_attempt)


class Adder:
    """Sends the adds of one run whose intents are durable, and records how each ended."""

    def __init__(
        self,
        ctx: RunContext,
        writer: Writer,
        report: SyncReport,
        transformer: Transformer,
        *,
        keep_unsettled: bool = False,
    ) -> None:
        self.client, self.reporter = ctx.client, ctx.reporter
        #: Every add stays unsettled whatever its answer (a state older than its collection, on a service
        #: whose listing end cannot be read): a newer state may have sent the same file.
        self.keep_unsettled = keep_unsettled
        self.writer = writer
        self.report = report
        #: What is sent for each file (``transform:``): a body refused as too large is made smaller.
        self.transformer = transformer

    async def add(
        self,
        p: Planned,
        intent: Row,
        sent: tuple[bytes, str, bytes],
        metadata: dict[str, Any],
        now: float,
        *,
        reused: bool = False,
    ) -> None:
        """Send the add whose intent is durable, and record how it ended. ``sent`` is the file's bytes,
        its format and what is sent for it; a body refused as too large is made smaller while it can.

        The token's unsettled entry is settled with the outcome only when that outcome proves how many
        copies the collection holds: one after a clean answer, none after a refusal of a call never
        lost. A token used before (``reused``: an earlier run's lost add) may have left a copy of its
        own: it stays unsettled for a listing (``engine/settle.py``, reconcile) to settle."""
        assert p.item is not None
        item, writer, report = p.item, self.writer, self.report
        data, kind, payload = sent
        token = intent.token
        assert token is not None

        def settled(exc: PipelineError | None = None) -> list[str]:
            unsure = self.keep_unsettled or reused or (exc is not None and maybe_stored(exc))
            return [] if unsure else [token]

        def add(body: bytes) -> Awaitable[RemoteImage]:
            return self.client.add_image(body, metadata)

        try:
            remote, payload = await self.transformer.send(add, data, kind, payload, item.key, self.reporter)
        except Rejected as exc:
            rejected = replace(intent, status=Status.REJECTED, code=exc.code, message=str(exc))
            writer.submit(put=[rejected], unsettled_done=settled(exc))
            report.rejected[refusal_code(exc)] += 1
            self.reporter.event("rejected", item.key, str(exc))
            return
        except ServiceFailing as exc:
            # The breaker stopped this add: as it was if never sent (the next run tries it), else
            # `uploading` with its token (it may be stored: reconcile settles it). The run stops.
            if exc.sent:
                writer.submit(put=[replace(intent, status=Status.UPLOADING, message=str(exc))])
                report.uncertain += 1
            else:
                self.put_back(p, settled(exc))
                report.not_tried += 1
            raise
        except Retryable as exc:
            # Sent and unanswered: it may be stored; the row stays `uploading` with its token for
            # reconcile (or the next run, same token) to settle. Never sent: plainly failed.
            status = Status.UPLOADING if exc.sent else Status.FAILED
            writer.submit(put=[replace(intent, status=status, message=str(exc))], unsettled_done=settled(exc))
            report.failed += 1
            report.uncertain += exc.sent
            self.reporter.event("failed", item.key, str(exc))
            return
        except (AuthError, QuotaSpent) as exc:
            # The service refused the call (or the limiter never sent it): put the row back as it
            # was. Should an earlier attempt of this add have been stored, reconcile deletes that
            # orphan — the invariant holds either way.
            self.put_back(p, settled(exc))
            report.not_tried += isinstance(exc, QuotaSpent)
            raise
        synced = intent.synced(remote.id)
        tombs = []
        if intent.remote_id is not None and intent.remote_id != remote.id:
            tombs.append(
                Tombstone(remote_id=intent.remote_id, key=item.key, reason="replaced", created_at=now)
            )
        writer.submit(
            answered=[synced], tombstones_add=tombs, unsettled_done=[] if remote.duplicate_risk else settled()
        )
        if remote.duplicate_risk:
            report.uncertain += 1
            self.reporter.event(
                "uncertain", item.key, "an earlier attempt's answer was lost: it may be stored too"
            )
        self.count_sent(p, transformed=payload is not data)

    def put_back(self, p: Planned, unsettled_done: list[str]) -> None:
        """The row as it was before this run's attempt (none, for a new file): it was never sent — or,
        after a lost attempt, its token stays unsettled (``unsettled_done`` empty) for a listing."""
        assert p.item is not None
        if p.row is None:
            self.writer.submit(delete=[p.item.key], unsettled_done=unsettled_done)
        else:
            self.writer.submit(put=[p.row], unsettled_done=unsettled_done)

    def count_sent(self, p: Planned, *, transformed: bool) -> None:
        """An upload done (or, in a dry run, that would be): a replace when the row had an image."""
        assert p.item is not None
        replaced = p.row is not None and p.row.remote_id is not None
        self.report.did("replace" if replaced else "add", p.item.key)
        self.report.transformed += transformed
