"""facesync: keep a photo archive in step with a Face Search collection.

The public names are importable from here, and each is loaded on first use, so ``import pipeline``
(and a command that needs no request) does not pay for the network stack::

    from pipeline import load_config, SyncEngine, FaceSearchClient
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name → the module that defines it.
_PUBLIC = {
    "Config": "pipeline.config",
    "ConfigError": "pipeline.errors",
    "EmulatorThread": "pipeline.emulator",
    "FaceSearchClient": "pipeline.api",
    "ImageId": "pipeline.keys",
    "Limiter": "pipeline.api",
    "PipelineError": "pipeline.errors",
    "ReconcileOptions": "pipeline.engine.reconcile",
    "Reconciler": "pipeline.engine.reconcile",
    "RemoteImage": "pipeline.api",
    "Row": "pipeline.state",
    "RunContext": "pipeline.engine.runs",
    "ServiceProfile": "pipeline.config.profile",
    "Source": "pipeline.sources",
    "SourceItem": "pipeline.sources",
    "State": "pipeline.state",
    "StateLock": "pipeline.state",
    "Status": "pipeline.state",
    "SyncEngine": "pipeline.engine.sync",
    "SyncOptions": "pipeline.engine.sync",
    "load_config": "pipeline.config",
    "open_source": "pipeline.sources",
    "parse_config": "pipeline.config",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
