"""One function per command: each opens what it needs (lock, state, source, client) and runs one engine.

The names below load on first use, so importing one command module (``commands.shard`` for every
command line) does not import the engines and the network stack of all the others.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name → the module that defines it.
_PUBLIC = {
    "check": "pipeline.commands.check",
    "reconcile": "pipeline.commands.runs",
    "retry": "pipeline.commands.archive",
    "rows": "pipeline.commands.archive",
    "runs": "",  # the module pipeline.commands.runs itself
    "status": "pipeline.commands.archive",
    "sync": "pipeline.commands.runs",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline.commands' has no attribute {name!r}")
    if not module:
        return importlib.import_module(f"pipeline.commands.{name}")  # binds it here as well
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
