"""The final table every bench prints."""

from __future__ import annotations

from collections.abc import Sequence

from bench.common import Figure


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table: figure, value, target, ratio, verdict, note."""
    lines = ["| figure | value | target | ratio | result | note |", "|---|---|---|---|---|---|"]
    for f in figures:
        lines.append(
            f"| {f.name} | {fmt(f.value)} {f.unit} | {f.target} | {fmt(f.ratio)} | {f.verdict} | {f.note} |"
        )
    return "\n".join(lines)


def print_table(figures: Sequence[Figure]) -> None:
    print(table(figures), flush=True)
