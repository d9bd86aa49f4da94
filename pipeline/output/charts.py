"""The last runs as a small inline SVG chart: files by outcome, throttled answers, and duration.

Three panels share one x-axis, a run per slot, oldest on the left: stacked bars of the files added,
replaced, removed and rejected; a bar of the throttled answers (a different unit, so its own panel);
and the duration as a dot on a line. Each run is one ``<g class="run">`` holding its marks and a
``<title>`` with every number (the tooltip). Scales are linear from zero, each panel to its own
largest value; a count that is not zero is at least one pixel high, so a nightly run of three files
still shows beside a first run of ten thousand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.output.html import text, when

#: The stacked outcomes, bottom to top, with their colours.
SERIES = (("added", "#2e7d32"), ("replaced", "#1565c0"), ("removed", "#78909c"), ("rejected", "#c62828"))
THROTTLED_COLOUR = "#ef6c00"
DURATION_COLOUR = "#37474f"
FAILED_COLOUR = "#c62828"
#: A run stopped on purpose and resumable (its deadline: exit 7; a spent quota or budget: 4) is not a failure.
STOPPED_COLOUR = "#ef6c00"
STOPPED = (4, 7)

LEFT, RIGHT, TOP = 70, 12, 12
SLOT, BAR = 26, 16
ITEMS_H, THROTTLED_H, DURATION_H, GAP, LABELS_H = 130, 34, 48, 16, 18
MIN_WIDTH = 420


@dataclass(frozen=True)
class RunPoint:
    """What the chart shows of one run (a row of ``State.last_runs``)."""

    id: int
    command: str
    started_at: float | None
    exit_code: int | None
    duration: float | None
    values: dict[str, int] = field(default_factory=dict)
    throttled: int = 0

    @property
    def total(self) -> int:
        return sum(self.values.values())


def run_point(run: Mapping[str, Any]) -> RunPoint:
    """One run's marks from its record: a sync's ``--json`` counts, or a reconcile's (its deletions
    count as removed); ``counts`` is None while a run is unfinished (or was killed)."""
    counts: Mapping[str, Any] = run.get("counts") or {}
    started, finished = run.get("started_at"), run.get("finished_at")
    removed = _number(counts.get("removed")) + _number(counts.get("deleted"))
    removed += _number(counts.get("duplicates_removed"))
    values = {
        "added": _number(counts.get("added")),
        "replaced": _number(counts.get("replaced")),
        "removed": removed,
        "rejected": _number(counts.get("rejected")),
    }
    return RunPoint(
        id=int(run.get("id") or 0),
        command=str(run.get("command") or "?"),
        started_at=started,
        exit_code=run.get("exit_code"),
        duration=finished - started if started is not None and finished is not None else None,
        values=values,
        throttled=_number(counts.get("throttled")),
    )


def _number(value: Any) -> int:
    """A count from a run record: an int, or a mapping of counts (``rejected`` by code) summed."""
    if isinstance(value, Mapping):
        return sum(v for v in value.values() if isinstance(v, int) and not isinstance(v, bool))
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def describe(point: RunPoint) -> str:
    """The tooltip of one run: every number it shows, in words."""
    end = "unfinished or killed" if point.exit_code is None else f"exit {point.exit_code}"
    took = "" if point.duration is None else f", {point.duration:.1f} s"
    parts = [f"{name} {point.values.get(name, 0):,}" for name, _ in SERIES]
    parts.append(f"throttled {point.throttled:,}")
    return f"#{point.id} {point.command} at {when(point.started_at)}: {end}{took}; " + ", ".join(parts)


def runs_chart(runs: Sequence[Mapping[str, Any]]) -> str:
    """The SVG chart of ``runs`` (newest first, as ``State.last_runs`` gives them)."""
    points = [run_point(r) for r in reversed(runs)]
    width = max(MIN_WIDTH, LEFT + SLOT * len(points) + RIGHT)
    items_top = TOP
    throttled_top = items_top + ITEMS_H + GAP
    duration_top = throttled_top + THROTTLED_H + GAP
    labels_top = duration_top + DURATION_H + 4
    height = labels_top + LABELS_H
    top_items = max((p.total for p in points), default=0)
    top_throttled = max((p.throttled for p in points), default=0)
    top_duration = max((p.duration or 0.0 for p in points), default=0.0)
    every = max(1, -(-len(points) // 30))  # at most ~30 run labels

    out = [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="the last {len(points)} runs" font-size="10" font-family="sans-serif">',
        _axis(items_top, ITEMS_H, width, f"{top_items:,} files"),
        _axis(throttled_top, THROTTLED_H, width, f"{top_throttled:,} throttled"),
        _axis(duration_top, DURATION_H, width, _seconds(top_duration)),
    ]
    dots: list[tuple[float, float]] = []
    for i, p in enumerate(points):
        x = LEFT + i * SLOT + (SLOT - BAR) / 2
        marks = [f"<title>{text(describe(p))}</title>"]
        base: float = items_top + ITEMS_H
        for name, colour in SERIES:
            h = min(_height(p.values.get(name, 0), top_items, ITEMS_H), base - items_top)
            if h > 0:
                base -= h
                marks.append(_rect(x, base, BAR, h, colour, name))
        if p.exit_code is None:
            marks.append(
                f'<rect class="unfinished" x="{x:.1f}" y="{items_top}" width="{BAR}" height="{ITEMS_H}" '
                f'fill="none" stroke="#90a4ae" stroke-dasharray="3 2"/>'
            )
        h = _height(p.throttled, top_throttled, THROTTLED_H)
        if h:
            marks.append(_rect(x, throttled_top + THROTTLED_H - h, BAR, h, THROTTLED_COLOUR, "throttled"))
        if p.duration is not None:
            cy = duration_top + DURATION_H - (DURATION_H * p.duration / top_duration if top_duration else 0)
            dots.append((x + BAR / 2, cy))
            marks.append(
                f'<circle class="duration" cx="{x + BAR / 2:.1f}" cy="{cy:.1f}" r="3.5" '
                f'fill="{DURATION_COLOUR}"/>'
            )
        if i % every == 0 or i == len(points) - 1:
            failed = p.exit_code not in (0, None)
            colour = STOPPED_COLOUR if p.exit_code in STOPPED else FAILED_COLOUR
            style = f' fill="{colour}" font-weight="bold"' if failed else ' fill="#546e7a"'
            marks.append(
                f'<text x="{x + BAR / 2:.1f}" y="{labels_top + 11}" text-anchor="middle"{style}>{p.id}</text>'
            )
        out.append(f'<g class="run" data-run="{p.id}">{"".join(marks)}</g>')
    if len(dots) > 1:
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in dots)
        out.insert(4, f'<polyline points="{line}" fill="none" stroke="#b0bec5" stroke-width="1.5"/>')
    out.append("</svg>")
    return "".join(out)


def legend() -> str:
    """The chart's key, as HTML below it."""
    keys = [*SERIES, ("throttled answers", THROTTLED_COLOUR), ("duration", DURATION_COLOUR)]
    items = "".join(f'<span><i style="--c:{colour}"></i>{text(name)}</span>' for name, colour in keys)
    return (
        f'<div class="legend">{items}<span>run number below each bar: '
        f'<b style="color:{FAILED_COLOUR}">red</b> when it failed, '
        f'<b style="color:{STOPPED_COLOUR}">orange</b> when its deadline or its quota stopped it '
        "(resumable)</span></div>"
    )


def _height(value: float, top: float, panel: int) -> float:
    if value <= 0 or top <= 0:
        return 0.0
    return max(1.0, panel * value / top)


def _rect(x: float, y: float, w: float, h: float, colour: str, kind: str) -> str:
    return f'<rect class="{kind}" x="{x:.1f}" y="{y:.1f}" width="{w}" height="{h:.1f}" fill="{colour}"/>'


def _axis(top: int, height: int, width: int, label: str) -> str:
    """A panel's baseline and its largest value, written at its top left."""
    base = top + height
    return (
        f'<line x1="{LEFT - 4}" y1="{base}" x2="{width - RIGHT}" y2="{base}" stroke="#cfd8dc"/>'
        f'<line x1="{LEFT - 4}" y1="{top}" x2="{width - RIGHT}" y2="{top}" stroke="#eceff1"/>'
        f'<text x="{LEFT - 8}" y="{top + 9}" text-anchor="end" fill="#607d8b">{text(label)}</text>'
        f'<text x="{LEFT - 8}" y="{base}" text-anchor="end" fill="#90a4ae">0</text>'
    )


def _seconds(value: float) -> str:
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s" if value >= 1 else f"{value:.2g} s"
