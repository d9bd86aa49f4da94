"""Prometheus textfile-collector metrics for cron runs (``--metrics-file PATH``).

node_exporter's textfile collector reads ``*.prom`` files from a directory; a run writes its file
with ``prometheus_client.write_to_textfile``, which writes a temporary file beside it and renames it
over the old one, so the collector never sees half of it. Values are written exactly (a Unix time
to the sub-second, counts of any size). Give sync and reconcile different files: each run replaces
its whole file. This module is imported only when ``--metrics-file`` is given.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

#: The ``--json`` counts exported as ``facesync_last_run_items{outcome=...}`` (when the run has them).
COUNTS = (
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
    "uncertain",
    "unsettled",
    "settled",
    "restored",
    "verified",
    "left",
)


def registry(command: str, summary: Mapping[str, Any], *, finished: float | None = None) -> CollectorRegistry:
    """The gauges of one run's summary (the ``--json`` object of sync or reconcile), in a registry."""
    finished = time.time() if finished is None else finished
    reg = CollectorRegistry(auto_describe=False)

    def gauge(name: str, help_text: str, *labels: str) -> Gauge:
        return Gauge(name, help_text, ["command", *labels], registry=reg)

    gauge("facesync_last_run_timestamp_seconds", "Unix time the last run finished.").labels(command).set(
        finished
    )
    gauge("facesync_last_run_duration_seconds", "Wall time of the last run.").labels(command).set(
        summary.get("elapsed", 0)
    )
    gauge("facesync_last_run_exit_code", "Exit code of the last run (0 in step).").labels(command).set(
        summary["exit_code"]
    )
    items = gauge("facesync_last_run_items", "Items of the last run by outcome.", "outcome")
    for name in COUNTS:
        if isinstance(summary.get(name), int):
            items.labels(command, name).set(summary[name])
    for name, label in (("rejected", "code"), ("skipped", "reason")):
        found = summary.get(name)
        if isinstance(found, Mapping):
            by = gauge(f"facesync_last_run_{name}", f"Images {name} in the last run, by {label}.", label)
            for key, value in sorted(found.items()):
                by.labels(command, str(key)).set(value)
    gauge("facesync_last_run_requests", "API requests sent by the last run.").labels(command).set(
        summary.get("requests", 0)
    )
    gauge(
        "facesync_last_run_throttle_events", "Throttled answers (code 4 / HTTP 429) seen by the last run."
    ).labels(command).set(summary.get("throttled", 0))
    if "deadline_hit" in summary:
        gauge("facesync_last_run_deadline_hit", "1 when the last run was stopped by its deadline.").labels(
            command
        ).set(1 if summary["deadline_hit"] else 0)
    if isinstance(summary.get("budget_left"), int):
        gauge("facesync_last_run_budget_left", "Requests the request budget had left.").labels(command).set(
            summary["budget_left"]
        )
    plan = summary.get("plan")
    if isinstance(plan, Mapping) and isinstance(plan.get("seconds"), int | float):
        gauge("facesync_plan_seconds", "Estimated seconds the work left needs (a dry run's plan).").labels(
            command
        ).set(plan["seconds"])
    return reg


def render(command: str, summary: Mapping[str, Any], *, finished: float | None = None) -> str:
    """The text exposition of one run's summary."""
    return generate_latest(registry(command, summary, finished=finished)).decode("utf-8")


def write(path: Path, command: str, summary: Mapping[str, Any]) -> None:
    """Write the metrics file atomically (its folder is made if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry(command, summary))
