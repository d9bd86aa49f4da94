"""What the commands print for people and scripts: status, rows, the reconcile table, search matches.

Pure: values in, lines out. The CLI decides where they go (stdout for data, stderr for messages).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from pipeline.keys import safe_key
from pipeline.output.summary import ReconcileReport
from pipeline.output.terminal import INVISIBLE, shown
from pipeline.state import Row

#: The columns of ``ls --format csv`` and the fields of ``ls --json``, in order (a contract).
ROW_COLUMNS = ("key", "status", "remote_id", "size", "code", "message", "sha256")


#: What JSON may carry raw but a terminal should not see: DEL, the C1 controls, the invisible reordering
#: characters and surrogates (an undecodable name), written as ``\\uXXXX`` — the same string once decoded.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), *INVISIBLE, *range(0xD800, 0xE000))}


def json_line(obj: Any) -> str:
    """One JSON object on one line: what ``--json`` prints. Every string is exact once decoded; none
    carries a raw control character (JSON escapes C0 itself; the rest is escaped here)."""
    return json.dumps(obj, default=str, ensure_ascii=False).translate(_JSON_ESCAPES)


def run_line(run: Mapping[str, Any]) -> str:
    """One run of the runs table, for humans."""
    started = run.get("started_at")
    when = datetime.fromtimestamp(started).isoformat(sep=" ", timespec="seconds") if started else "?"
    code = run.get("exit_code")
    end = "still running or killed" if code is None else f"exit {code}"
    return f"#{run.get('id')} {run.get('command')} at {when}: {end}"


def status_lines(info: Mapping[str, Any]) -> Iterator[str]:
    """``facesync status`` for humans."""
    yield f"state   {info['state']}"
    yield f"source  {info['source']}"
    yield f"api     {info['api']}"
    yield f"files   {info['total']}"
    for name, n in sorted(info["counts"].items()):
        yield f"  {name:<10} {n}"
    if info["pending_remote_deletes"]:
        yield f"pending remote deletes  {info['pending_remote_deletes']}"
    transform = info.get("transform") or {}
    yield f"transform  {transform.get('settings') or 'off'}"
    if transform.get("synced_otherwise"):
        yield (
            f"  {transform['synced_otherwise']} synced image(s) were sent with other transform settings: "
            "the next sync sends them again (held to limits.max_delete)"
        )
    if (plan := info.get("plan")) and plan.get("text"):
        yield f"plan    {plan['text']}"
    for run in info["last_runs"]:
        yield f"last run {run_line(run)}"


def row_values(row: Row) -> dict[str, Any]:
    """A state row as ``ls --json`` prints it."""
    return {
        "key": safe_key(row.key),
        "status": row.status.value,
        "remote_id": row.remote_id,
        "size": row.size,
        "code": row.code,
        "message": row.message,
        "sha256": row.sha256,
    }


def row_lines(rows: Iterable[Row], fmt: str) -> Iterator[str]:
    """``facesync ls`` in one of its formats: ``text`` (aligned), ``csv`` (with a header), ``json``."""
    if fmt == "csv":
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="")
        out.writerow(ROW_COLUMNS)
        yield _take(buf)
        for row in rows:
            values = row_values(row)
            out.writerow(["" if values[c] is None else values[c] for c in ROW_COLUMNS])
            yield _take(buf)
        return
    for row in rows:
        if fmt == "json":
            yield json_line(row_values(row))
            continue
        rid = "" if row.remote_id is None else str(row.remote_id)
        extra = f"  [{row.code}] {row.message}" if row.code is not None else ""
        if row.code is None and row.message:
            extra = f"  {row.message}"
        yield f"{row.status.value:<9} {rid:<26} {safe_key(row.key)}{extra}"


def _take(buf: io.StringIO) -> str:
    text = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return text


def reconcile_lines(report: ReconcileReport) -> Iterator[str]:
    """The reconcile summary table, for humans — or, after an error that stopped it before it counted
    anything (wrong credentials, an unreachable host), one line: a table of zeros tells nothing."""
    name = "reconcile (dry run)" if report.dry_run else "reconcile"
    if report.error and not any(n for label, n in report.table() if label != "requests"):
        took = f"{report.requests} request(s) in {report.elapsed:.1f}s"
        yield f"facesync: {name}: nothing changed ({took}), exit {report.exit_code}"
        return
    yield f"facesync: {name}"
    for name, value in report.table():
        yield f"  {name:<22} {value:>8}"
    yield f"  {'elapsed':<22} {report.elapsed:>7.1f}s"
    yield f"  {'exit code':<22} {report.exit_code:>8}"


#: How much of each part a "would delete" line shows: the key and the url (characters, once escaped),
#: how many of the metadata's key names, and how much of each.
_SHOWN_KEY, _SHOWN_URL, _SHOWN_NAMES, _SHOWN_NAME = 100, 100, 8, 24
#: A dry run's reason for each image it would delete (the list file's ``reason``), in words.
WOULD_DELETE_REASONS = {
    "orphan": "not held by the state",
    "duplicate": "a superseded copy of one of ours",
    "pending_delete": "the state already meant to delete it",
}


def would_delete_detail(reason: str, key: str | None, url: str | None, metadata: Any) -> str:
    """What a dry run says of one image it would delete, after its id: why (``reason`` is the list
    file's word for it), the file its metadata names, its url and its metadata's key names
    (``metadata``: the object as listed, the list of its keys when it was too long to keep, or None).

    Each part is escaped (:func:`~pipeline.output.terminal.shown`) and cut, so the line stays one short
    line whatever the listing holds: under 480 characters after the id."""
    parts = [WOULD_DELETE_REASONS.get(reason, reason)]
    if key is not None:
        parts.append(f"file {_cut(shown(key), _SHOWN_KEY)}")
    if url is not None:
        parts.append(f"url {_cut(shown(url), _SHOWN_URL)}")
    if isinstance(metadata, dict | list) and metadata:
        names = sorted(metadata)
        told = ", ".join(_cut(shown(n), _SHOWN_NAME) for n in names[:_SHOWN_NAMES])
        more = f" (+{len(names) - _SHOWN_NAMES} more)" if len(names) > _SHOWN_NAMES else ""
        parts.append(f"metadata {told}{more}")
    elif metadata is not None or url is not None:
        parts.append("no metadata")
    return "; ".join(parts)


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def match_line(match: Mapping[str, Any]) -> str:
    """One search match: score, remote id, the archive file it came from (or that it is foreign), the
    names of its faces (``people``, when its metadata has some), url."""
    score = f"{match['score']:.2f}" if isinstance(match["score"], int | float) else "   -"
    where = match["path"] or match["key"] if match["known"] else "(not from this archive)"
    who = f"  people: {match['people']}" if match.get("people") else ""
    return f"{score}  {match['id']!s:<26} {safe_key(str(where))}{who}  {match['url'] or ''}"
