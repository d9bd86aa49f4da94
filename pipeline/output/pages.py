"""The two HTML pages: the archive report (``facesync report``) and a search's matches (``search --html``).

Pure: values in (thumbnails already made), pieces of HTML out, for :func:`pipeline.output.html.write`.
What a page holds is gathered by :mod:`pipeline.commands.report`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.output.charts import legend, run_point, runs_chart
from pipeline.output.html import counts_row, page, section, status_bar, table, text, tile, when
from pipeline.output.thumbs import Thumb

#: Why each kind of file is in its gallery, under the gallery's heading (HTML: constants, not data).
GALLERY_NOTES = {
    "rejected": "The service refused these files for good, with its code and message. They are not "
    "sent again until they change, or until <code>facesync retry --status rejected</code>.",
    "skipped": "facesync refused these files itself, without spending a request (empty, not an image, "
    "cut short, too large, unreadable, a link or a FIFO). They are not tried again until they change.",
    "failed": "These still failed after every retry (the service or the network); "
    "the next sync sends them again.",
}


@dataclass(frozen=True)
class Card:
    """One picture on a page: its thumbnail, a title (the file), and labelled values."""

    thumb: Thumb
    title: str
    fields: tuple[tuple[str, str], ...] = ()
    status: str | None = None


@dataclass(frozen=True)
class Gallery:
    """The files of one status as cards: the first ``len(cards)`` of ``total``."""

    status: str
    heading: str
    total: int
    cards: Sequence[Card]


@dataclass(frozen=True)
class ArchiveReport:
    """Everything ``facesync report`` shows."""

    state: str
    source: str
    api: str
    generated_at: float
    counts: Mapping[str, int]
    #: (top-level folder, counts by status), largest first; "" is the top level.
    folders: Sequence[tuple[str, Mapping[str, int]]]
    folders_left_out: int = 0
    #: The last runs, newest first; None when none were asked for (``--runs 0``).
    runs: Sequence[Mapping[str, Any]] | None = ()
    galleries: Sequence[Gallery] = field(default_factory=list)


@dataclass(frozen=True)
class SearchReport:
    """Everything ``facesync search --html`` shows."""

    image: str
    api: str
    generated_at: float
    query: Card
    matches: Sequence[Card]


def report_page(report: ArchiveReport) -> Iterator[str]:
    """The archive report, in pieces."""
    total = sum(report.counts.values())
    nav = [("glance", "At a glance")] + ([("runs", "Last runs")] if report.runs is not None else [])
    nav += [(g.status, f"{g.heading} ({g.total:,})") for g in report.galleries]
    head = (
        "<header><h1>facesync report</h1>"
        f'<p class="meta">source <code>{text(report.source)}</code> · state <code>{text(report.state)}</code>'
        f" · api <code>{text(report.api)}</code> · written {text(when(report.generated_at))}</p>"
        "<nav>" + "".join(f'<a href="#{text(a)}">{text(label)}</a>' for a, label in nav) + "</nav></header>\n"
    )
    sections = [section("glance", "At a glance", total, _glance(report))]
    if report.runs is not None:
        sections.append(section("runs", "Last runs", len(report.runs), _runs(report.runs)))
    sections += [section(g.status, g.heading, g.total, _gallery(g)) for g in report.galleries]
    return page("facesync report", head, (piece for s in sections for piece in s))


def _glance(report: ArchiveReport) -> Iterator[str]:
    shown = {name: n for name, n in report.counts.items() if n}
    yield counts_row(shown or {"files": 0})
    if not report.folders:
        return
    used = [name for name in report.counts if any(c.get(name) for _, c in report.folders)]
    rows = []
    for folder, counts in report.folders:
        name = text(folder) if folder else '<span class="empty">(top level)</span>'
        by_status = {s: counts.get(s, 0) for s in used}
        rows.append(
            [
                name,
                f"{sum(counts.values()):,}",
                *(f"{counts.get(s, 0):,}" if counts.get(s) else "" for s in used),
                status_bar(by_status),
            ]
        )
    yield "<p>By top-level folder:</p>\n"
    yield table(["folder", "files", *used, ""], rows, numeric=range(1, len(used) + 2))
    if report.folders_left_out:
        yield f'<p class="more">and {report.folders_left_out:,} smaller folders not shown</p>\n'


def _runs(runs: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    if not runs:
        yield '<p class="empty">No run recorded yet: <code>facesync sync</code> records each run.</p>\n'
        return
    yield f'<div class="chart">{runs_chart(runs)}</div>{legend()}\n'
    rows = []
    for run in runs:
        p = run_point(run)
        counts: Mapping[str, Any] = run.get("counts") or {}
        skipped = counts.get("skipped")
        rows.append(
            [
                f"#{p.id}",
                text(p.command),
                text(when(p.started_at)),
                "" if p.duration is None else f"{p.duration:.1f} s",
                "unfinished" if p.exit_code is None else str(p.exit_code),
                *(f"{p.values[name]:,}" for name in ("added", "replaced", "removed", "rejected")),
                f"{sum(skipped.values()):,}" if isinstance(skipped, Mapping) else "",
                f"{p.throttled:,}",
                text(counts.get("requests", "")),
            ]
        )
    headers = ["run", "command", "started", "took", "exit", "added", "replaced", "removed", "rejected"]
    yield table([*headers, "skipped", "throttled", "requests"], rows, numeric=(0, *range(3, 12)))


def _gallery(gallery: Gallery) -> Iterator[str]:
    note = GALLERY_NOTES.get(gallery.status)
    if note:
        yield f'<p class="meta">{note}</p>\n'
    if not gallery.total:
        yield '<p class="empty">None.</p>\n'
        return
    yield '<div class="grid">\n'
    for card in gallery.cards:
        yield tile(card.thumb, card.title, card.fields, status=card.status)
    yield "</div>\n"
    left_out = gallery.total - len(gallery.cards)
    if left_out > 0:
        yield (
            f'<p class="more">and {left_out:,} more not shown here (the page holds a limited number of '
            f"thumbnails; <code>facesync report --max-thumbnails N</code> raises it): "
            f"<code>facesync ls --status {text(gallery.status)} --format csv</code> lists them all.</p>\n"
        )


def search_page(report: SearchReport) -> Iterator[str]:
    """A search's query photo and its matches, in pieces."""
    n = len(report.matches)
    head = (
        "<header><h1>facesync search</h1>"
        f'<p class="meta">query <code>{text(report.image)}</code> · {n:,} match{"es" if n != 1 else ""}'
        f" · api <code>{text(report.api)}</code> · written {text(when(report.generated_at))}</p></header>\n"
    )
    query = report.query
    sections = [
        section("query", "Query", None, [f'<div class="query">{tile(query.thumb, query.title)}</div>\n']),
        section("matches", "Matches", n, _matches(report.matches)),
    ]
    return page("facesync search", head, (piece for s in sections for piece in s))


def _matches(matches: Sequence[Card]) -> Iterator[str]:
    if not matches:
        yield '<p class="empty">No match in the collection.</p>\n'
        return
    yield '<div class="grid">\n'
    for card in matches:
        yield tile(card.thumb, card.title, card.fields, status=card.status)
    yield "</div>\n"
