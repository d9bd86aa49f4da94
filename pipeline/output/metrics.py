"""Prometheus textfile-collector metrics for cron runs (``--metrics-file PATH``).

node_exporter's textfile collector reads ``*.prom`` files from a directory; a run writes its file
atomically (a temporary file renamed over the old one) so the collector never sees half of it.
Give sync and reconcile different files: each run replaces its whole file.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_COUNTS = (
    "added",
    "replaced",
    "retouched",
    "metadata_updated",
    "renamed",
    "removed",
    "unchanged",
    "failed",
    "pending",
    "listed",
    "orphans",
    "adopted",
    "deleted",
    "missing_requeued",
    "duplicates_removed",
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def render(command: str, summary: Mapping[str, Any], *, finished: float | None = None) -> str:
    """The text exposition of one run's summary (the ``--json`` object of sync or reconcile)."""
    finished = time.time() if finished is None else finished
    lines: list[str] = []

    def family(name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            lines.append(f"{name}{_labels(command=command, **labels)} {value:g}")

    family("facesync_last_run_timestamp_seconds", "Unix time the last run finished.", [({}, finished)])
    family(
        "facesync_last_run_duration_seconds", "Wall time of the last run.", [({}, summary.get("elapsed", 0))]
    )
    family(
        "facesync_last_run_exit_code", "Exit code of the last run (0 in step).", [({}, summary["exit_code"])]
    )
    family(
        "facesync_last_run_items",
        "Items of the last run by outcome.",
        [({"outcome": k}, summary[k]) for k in _COUNTS if isinstance(summary.get(k), int)],
    )
    for name, label in (("rejected", "code"), ("skipped", "reason")):
        found = summary.get(name)
        if isinstance(found, Mapping):
            family(
                f"facesync_last_run_{name}",
                f"Images {name} in the last run, by {label}.",
                [({label: str(k)}, v) for k, v in sorted(found.items())],
            )
    family(
        "facesync_last_run_requests", "API requests sent by the last run.", [({}, summary.get("requests", 0))]
    )
    family(
        "facesync_last_run_throttle_events",
        "Throttled answers (code 4 / HTTP 429) seen by the last run.",
        [({}, summary.get("throttled", 0))],
    )
    return "\n".join(lines) + "\n"


def write(path: Path, command: str, summary: Mapping[str, Any]) -> None:
    """Write the metrics file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render(command, summary))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
