"""One function per command: each opens what it needs (lock, state, source, client) and runs one engine."""

from pipeline.commands import runs
from pipeline.commands.runs import check, reconcile, status, sync

__all__ = ["check", "reconcile", "runs", "status", "sync"]
