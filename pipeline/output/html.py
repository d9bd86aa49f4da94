"""HTML for people: escaping, the page shell (inline CSS, no script, no network), tiles and tables.

A page is one self-contained file: styles inline, charts as inline SVG, pictures as ``data:`` URIs.
Every value that comes from data — keys, messages, metadata, ids, urls — goes through :func:`text`,
which escapes it and shows invisible characters (controls, bidi overrides) as ``\\uXXXX``, so a file
named ``<img src=x onerror=alert(1)>.jpg`` or ``photo\\u202egpj.exe`` reads as what it is. The page
also carries a Content-Security-Policy that forbids scripts and every fetch: a value that slipped
through could neither run nor call out.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from pipeline.keys import safe_key
from pipeline.output.thumbs import Thumb

#: No script, no plugin, no request: pictures only from ``data:``, styles only from the page itself.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

#: Colours of the statuses (also the folder bars and the glance tiles).
STATUS_COLOURS = {
    "synced": "#2e7d32",
    "pending": "#9e9e9e",
    "uploading": "#0277bd",
    "rejected": "#c62828",
    "skipped": "#ef6c00",
    "failed": "#6a1b9a",
    "deleting": "#455a64",
}

CSS = """
:root { --ink: #263238; --muted: #607d8b; --line: #cfd8dc; --card: #fff; --bg: #f5f7f8; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h2 .n { color: var(--muted); font-weight: normal; }
.meta { color: var(--muted); margin: 0; }
.meta code, td code, .tile code { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; }
nav { margin: 10px 0 0; }
nav a { color: #1565c0; margin-right: 14px; text-decoration: none; }
.counts { display: flex; flex-wrap: wrap; gap: 10px; }
.count { background: var(--card); border: 1px solid var(--line); border-left: 6px solid var(--c);
  border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.count b { display: block; font-size: 22px; }
.count span { color: var(--muted); }
table { border-collapse: collapse; background: var(--card); border: 1px solid var(--line); }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eceff1; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { display: flex; width: 220px; height: 12px; border-radius: 3px; overflow: hidden;
  background: #eceff1; margin-top: 4px; }
td .bar { margin-top: 3px; }
.bar span { display: block; height: 100%; }
.chart { display: inline-block; max-width: 100%; background: var(--card); border: 1px solid var(--line);
  border-radius: 6px; padding: 8px; overflow-x: auto; }
.chart svg { display: block; max-width: 100%; height: auto; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 6px 0 12px; color: var(--muted); }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px;
  vertical-align: -1px; background: var(--c); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 12px; }
.tile { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  overflow: hidden; border-top: 4px solid var(--c, var(--line)); }
.tile .pic { position: relative; display: flex; align-items: center; justify-content: center;
  height: 200px; background: #eceff1; }
.tile .pic img { max-width: 100%; max-height: 100%; }
.tile .pic .why { position: absolute; bottom: 6px; left: 6px; right: 6px; text-align: center;
  font-size: 12px; color: #b71c1c; }
.tile figcaption { padding: 6px 8px 8px; overflow-wrap: anywhere; }
.tile .key { font-weight: 600; }
.tile dl { margin: 4px 0 0; display: grid; grid-template-columns: auto 1fr; gap: 1px 8px; }
.tile dt { color: var(--muted); }
.tile dd { margin: 0; overflow-wrap: anywhere; }
.more { margin: 12px 0 0; padding: 8px 12px; background: #fff8e1; border: 1px solid #ffe082;
  border-radius: 6px; }
.empty { color: var(--muted); }
.query { display: flex; gap: 16px; align-items: flex-start; }
.query .tile { width: 280px; flex: none; }
"""

_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_SPACES = re.compile("[\t\n]")
#: Surrogates that ``surrogateescape`` did not make (it makes U+DC80..U+DCFF, one per undecodable byte).
_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def _escape(found: re.Match[str]) -> str:
    return f"\\u{ord(found.group()):04x}"


def text(value: object) -> str:
    """Any value as HTML text or a quoted attribute's value: escaped, undecodable bytes as ``\\xNN``,
    invisible and direction-changing characters as ``\\uXXXX``, tabs and newlines as spaces."""
    shown = _LONE_SURROGATE.sub(_escape, str(value))  # not an escaped byte: e.g. from a JSON answer
    shown = safe_key(shown)
    shown = _SPACES.sub(" ", shown)
    shown = _INVISIBLE.sub(_escape, shown)
    return html.escape(shown, quote=True)


def when(timestamp: float | None) -> str:
    """A Unix time as local date and time to the second (what ``facesync status`` shows)."""
    if not timestamp:
        return "?"
    return datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")


def page(title: str, head: str, sections: Iterable[str]) -> Iterator[str]:
    """A whole page, in pieces: ``head`` and ``sections`` are HTML made by this package's functions."""
    yield (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{text(title)}</title><style>{CSS}</style></head>\n<body>\n"
    )
    yield head
    yield from sections
    yield "\n</body></html>\n"


def section(anchor: str, heading: str, count: int | None, body: Iterable[str]) -> Iterator[str]:
    """An ``<h2>`` with an anchor (and a count), then ``body``."""
    n = "" if count is None else f' <span class="n">({count:,})</span>'
    yield f'\n<section id="{text(anchor)}"><h2>{text(heading)}{n}</h2>\n'
    yield from body
    yield "</section>\n"


def counts_row(counts: Mapping[str, int]) -> str:
    """The glance: one tile per status with its count (statuses in the given order)."""
    tiles = "".join(
        f'<div class="count" style="--c:{STATUS_COLOURS.get(name, "#90a4ae")}">'
        f"<b>{n:,}</b><span>{text(name)}</span></div>"
        for name, n in counts.items()
    )
    return f'<div class="counts">{tiles}</div>\n'


def status_bar(counts: Mapping[str, int]) -> str:
    """A thin bar split by status, widths in proportion to the counts."""
    total = sum(counts.values())
    if not total:
        return '<div class="bar"></div>'
    parts = "".join(
        f'<span style="width:{100 * n / total:.2f}%;background:{STATUS_COLOURS.get(name, "#90a4ae")}"></span>'
        for name, n in counts.items()
        if n
    )
    return f'<div class="bar">{parts}</div>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    """A table whose ``rows`` hold HTML (data escaped by :func:`text`); ``numeric`` columns align right."""
    right = set(numeric)

    def cls(i: int) -> str:
        return ' class="num"' if i in right else ""

    head = "".join(f"<th{cls(i)}>{text(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>\n" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"


def tile(
    thumb: Thumb, title: str, fields: Sequence[tuple[str, str]] = (), *, status: str | None = None
) -> str:
    """One picture card: the thumbnail (or the placeholder with its reason), ``title`` and ``fields``
    (label, value) below it; ``status`` colours the card's top edge. All text is escaped here."""
    if not thumb.uri.startswith(("data:image/jpeg;base64,", "data:image/png;base64,")):
        raise ValueError("a tile's picture must be a data: URI made by pipeline.output.thumbs")
    colour = f' style="--c:{STATUS_COLOURS[status]}"' if status in STATUS_COLOURS else ""
    kind = f' data-status="{text(status)}"' if status else ""
    why = f'<span class="why">{text(thumb.problem)}</span>' if thumb.problem else ""
    rows = "".join(f"<dt>{text(label)}</dt><dd>{text(value)}</dd>" for label, value in fields)
    details = f"<dl>{rows}</dl>" if rows else ""
    return (
        f'<figure class="tile"{kind}{colour}><div class="pic">'
        f'<img src="{thumb.uri}" width="{thumb.width}" height="{thumb.height}" alt="{text(title)}">{why}'
        f'</div><figcaption><div class="key">{text(title)}</div>{details}</figcaption></figure>\n'
    )


def write(path: Path, chunks: Iterable[str]) -> int:
    """Write a page atomically (a temporary file beside it, then a rename), making its folder; the bytes.

    A web server or a browser never sees half a page, and a failed run leaves the last good one.
    """
    path = Path(path)
    with contextlib.suppress(FileExistsError):  # a file where the folder should be: the open says so
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            out.writelines(chunks)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size
