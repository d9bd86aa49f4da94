"""One function per command: each opens what it needs (lock, state, source, client) and runs one engine."""

from pipeline.commands import runs
from pipeline.commands.archive import retry, rows, status
from pipeline.commands.check import check
from pipeline.commands.runs import reconcile, sync

__all__ = ["check", "reconcile", "retry", "rows", "runs", "status", "sync"]
