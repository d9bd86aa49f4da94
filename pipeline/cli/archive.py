"""The commands about the archive and the service: ``status``, ``ls``, ``check``, ``search``, ``retry``,
``report``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from pipeline.cli.app import Ctx, emit_json, handles_errors, main, pass_ctx
from pipeline.cli.report_html import DEFAULT_MAX_THUMBNAILS, DEFAULT_RUNS
from pipeline.output.terminal import echo, echo_lines, stdout_is_terminal


@main.command()
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout.")
@pass_ctx
@handles_errors
def status(obj: Ctx, json_mode: bool) -> None:
    """Counts of files by status, pending remote deletes, and the last runs."""
    from pipeline.commands import archive
    from pipeline.output.text import status_lines

    info = {"config": str(obj.config_path), **archive.status(obj.config)}
    if json_mode:
        emit_json(info)
        return
    echo_lines([f"config  {info['config']}", *status_lines(info)])


@main.command(name="ls")
@click.option(
    "--status",
    "status_filter",
    type=click.Choice(["pending", "uploading", "synced", "rejected", "skipped", "failed", "deleting"]),
    help="Only rows with this status.",
)
@click.option("--json", "json_mode", is_flag=True, help="One JSON object per line on stdout.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text", help="Output format."
)
@pass_ctx
@handles_errors
def ls(obj: Ctx, status_filter: str | None, json_mode: bool, fmt: str) -> None:
    """List state rows, one a line: key, status, remote id, code and message."""
    from pipeline.commands import archive
    from pipeline.output.text import row_lines
    from pipeline.state import Status

    rows = archive.rows(obj.config, Status(status_filter) if status_filter else None)
    fmt = "json" if json_mode else fmt
    if fmt == "text" or (fmt == "csv" and stdout_is_terminal()):
        echo_lines(row_lines(rows, fmt))  # names shown safely (GNU ls's habit for a terminal)
    else:
        for line in row_lines(rows, fmt):  # data, exact: JSON escapes, CSV quotes
            click.echo(line, color=True)  # color: click strips what looks like ANSI off a terminal


CHECK_EXIT_CODES_HELP = """\b
Exit codes (the ones `sync` would give):
  0   all is ready: source, state folder, endpoint, credentials
  1   the source is missing or unreadable, or the host is unreachable (or answers
      not in the documented shape)
  2   usage or config error, or the state cannot be written
  3   bad credentials
  4   the service is throttling (out of requests) right now
  5   the source is empty while the state holds synced files (a failed mount?)
"""


@main.command(epilog=CHECK_EXIT_CODES_HELP)
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout.")
@pass_ctx
@handles_errors
def check(obj: Ctx, json_mode: bool) -> None:
    """Check what `sync` needs, changing nothing: the config, the source, the state, the endpoint.

    One line each: which config is used; the source is configured, present, readable and holds files
    (walked to its first file; an S3 manifest is left to the sync); the state file, or the folder it
    will be created in, is writable (nothing is created); then one cheap call (a one-image listing
    page, no retries: an unreachable host fails within `api.connect_timeout`) and whether a service
    profile was measured. --json prints ok, endpoint, images, error, exit_code, profile, note,
    config, state and checks.
    """
    from pipeline.commands.check import check as run_check
    from pipeline.errors import ConfigError

    try:
        config = obj.config
    except ConfigError as exc:
        if not json_mode:
            raise
        result: dict[str, Any] = {"ok": False, "endpoint": None, "images": None, "error": str(exc)}
        result |= {"profile": None, "note": None, "exit_code": exc.exit_code}
    else:
        result = run_check(config)
    if json_mode:
        emit_json(result)
        sys.exit(result["exit_code"])
    echo(f"facesync: config {obj.config_path}", err=True)
    for step in result.get("checks", []):
        echo(f"facesync: {'OK' if step['ok'] else 'error'}: {step['detail']}", err=True)
    if result["ok"]:
        echo(
            f"facesync: OK: {result['endpoint']} answered; {result['images']} image(s) on the first page",
            err=True,
        )
        if result["note"]:
            echo(f"facesync: note: {result['note']}", err=True)
    elif not any(not step["ok"] for step in result.get("checks", [])):
        echo(f"facesync: error: {result['error']}", err=True)
    sys.exit(result["exit_code"])


@main.command()
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout.")
@click.option(
    "--html",
    "html_path",
    metavar="PATH",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the query and its matches, as thumbnails from the archive, to PATH (one HTML file).",
)
@pass_ctx
@handles_errors
def search(obj: Ctx, image: Path, json_mode: bool, html_path: Path | None) -> None:
    """Find the images of the collection that match IMAGE, with the local file each came from.

    Each match shows its remote id, its url and the key (and path) of the archive file it was
    uploaded from; a match the state does not know (added by hand or by another tool) is marked
    "not from this archive".
    """
    from pipeline.commands.search import search as run_search
    from pipeline.output.text import match_line

    matches = asyncio.run(run_search(obj.config, image))
    if html_path is not None:
        from pipeline.commands.report import write_search_page

        written = write_search_page(obj.config, image, matches, html_path)
        echo(f"facesync: wrote {written.describe()}", err=True)
    if json_mode:
        emit_json({"image": str(image), "matches": matches})
        return
    if not matches:
        echo(f"facesync: no match for {image}", err=True)
        return
    echo_lines(match_line(m) for m in matches)


@main.command()
@click.option(
    "--status",
    "statuses",
    type=click.Choice(["rejected", "failed", "skipped"]),
    multiple=True,
    required=True,
    help="Which rows to queue again (repeatable).",
)
@pass_ctx
@handles_errors
def retry(obj: Ctx, statuses: tuple[str, ...]) -> None:
    """Queue refused or failed files again: the next sync sends them.

    Rejected and skipped files are otherwise not retried until the file changes (the service or the
    pipeline refused them for good); use this after fixing the cause, e.g. a raised size limit.
    """
    from pipeline.commands import archive
    from pipeline.state import Status

    n = archive.retry(obj.config, [Status(s) for s in statuses])
    echo(f"facesync: queued {n} file(s) again; run `facesync sync` to send them", err=True)


@main.command()
@click.option(
    "--html",
    "html_path",
    metavar="PATH",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Write the report to PATH: one self-contained HTML file (atomically).",
)
@click.option(
    "--runs",
    type=click.IntRange(min=0),
    default=DEFAULT_RUNS,
    show_default=True,
    help="How many of the last runs to chart.",
)
@click.option(
    "--max-thumbnails",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_THUMBNAILS,
    show_default=True,
    help="Most thumbnails on the page (refused, skipped and failed files share them); the rest are counted.",
)
@pass_ctx
@handles_errors
def report(obj: Ctx, html_path: Path, runs: int, max_thumbnails: int) -> None:
    """Write the archive as one HTML page: look, don't read.

    Counts by status and by top-level folder, the last runs as a chart, and the files the service
    refused, those skipped locally and those still failing as thumbnails with the reason. The page
    needs no network (styles, chart and pictures are inside it). Reads the state only: a missing
    state is exit 2, and a running sync is not disturbed.
    """
    from pipeline.commands.report import write_report

    written = write_report(obj.config, html_path, runs=runs, max_thumbnails=max_thumbnails)
    echo(f"facesync: wrote {written.describe()}", err=True)
