"""``facesync sync`` and ``facesync reconcile``: the two commands that run an engine."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from pipeline.cli.app import (
    METRICS_OPTION,
    Ctx,
    emit_json,
    handles_errors,
    main,
    pass_ctx,
    write_metrics,
)
from pipeline.cli.report_html import REPORT_HTML_OPTION, write_report_html
from pipeline.output.terminal import echo, summary

MAX_DURATION_OPTION = click.option(
    "--max-duration",
    metavar="DURATION",
    help="Stop starting new work after DURATION (90m, 4h, 1h30m, or seconds): what is in flight is "
    "finished and recorded, exit 7 (resumable). Overrides a longer limits.max_duration.",
)
UNTIL_OPTION = click.option(
    "--until",
    metavar="HH:MM",
    help="The same, at the next HH:MM local time (today's if still ahead, else tomorrow's).",
)


def _max_duration(max_duration: str | None, until: str | None) -> float | None:
    """The run's duration from ``--max-duration`` and ``--until`` (the sooner), in seconds."""
    from pipeline.config.model import parse_duration
    from pipeline.engine.runs import seconds_until, sooner

    return sooner(
        parse_duration(max_duration, "--max-duration") if max_duration is not None else None,
        seconds_until(until) if until is not None else None,
    )


@main.command()
@click.option(
    "--dry-run", is_flag=True, help="Show what would be sent and deleted; send nothing, change nothing."
)
@click.option("--max-delete", type=click.IntRange(min=0), help="Allow up to N remote deletions for this run.")
@click.option(
    "--allow-foreign",
    is_flag=True,
    help="Upload even though this state has never sent an image and the collection holds some (a lost state? "
    "see `reconcile --adopt`).",
)
@click.option(
    "--checksum",
    is_flag=True,
    help="Read and hash every synced file, whatever its size, mtime, ctime and inode say (a scrub: "
    "what changed is sent, the rest costs no request).",
)
@MAX_DURATION_OPTION
@UNTIL_OPTION
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON summary object on stdout.")
@METRICS_OPTION
@REPORT_HTML_OPTION
@pass_ctx
@handles_errors
def sync(
    obj: Ctx,
    dry_run: bool,
    max_delete: int | None,
    allow_foreign: bool,
    checksum: bool,
    max_duration: str | None,
    until: str | None,
    json_mode: bool,
    metrics_file: Path | None,
    report_html: Path | None,
) -> None:
    """Upload new and changed images, delete those gone from the source.

    Only what changed since the last run is sent: a file whose size, mtime, ctime and inode are
    unchanged is not even read (source.ignore_ctime / source.ignore_inode for file systems where those
    change on their own; --checksum reads everything). A crash at any moment loses nothing. An upload
    whose answer was lost stays unsettled, and every sync exits 1 while any is, until a listing
    settles it: the next sync does so itself from the end of the listing on a service whose order is
    known (`facesync probe`), else `facesync reconcile` does. Removals over `limits.max_delete` are
    refused as a whole (exit 5). A state that has never sent an image does not upload into a collection that
    holds some (exit 6). When the service keeps failing, the run stops sending (exit 1) and says
    how many files were not tried. --dry-run reads and checks files exactly as the run would.
    A deadline (--max-duration, --until, limits.max_duration) or a spent request budget
    (limits.max_requests, limits.requests_per_day) stops the run as a spent quota does: what is in
    flight is recorded, `left` says how many files wait for the next run; exit 7 for the deadline, 4
    for the budget.
    """
    from pipeline.commands import runs
    from pipeline.commands.heap import for_long_run
    from pipeline.engine.sync import SyncOptions
    from pipeline.output.reporter import make_reporter

    config = obj.config
    reporter = make_reporter(json_mode=json_mode)
    options = SyncOptions(
        dry_run=dry_run,
        max_delete=max_delete,
        shard=obj.shard,
        allow_foreign=allow_foreign,
        checksum=checksum,
        max_duration=_max_duration(max_duration, until),
        list_actions=json_mode,
    )
    for_long_run()
    report = asyncio.run(runs.sync(config, options, reporter))
    if not dry_run:
        write_metrics(metrics_file, "sync", report.to_json())
    write_report_html(report_html, config)
    if json_mode:
        actions = report.actions
        emit_json(report.to_json(), streamed=("actions", actions.texts()) if actions is not None else None)
    else:
        if report.error:
            echo(f"facesync: error: {report.error}", err=True)
        summary(f"facesync: {report.summary_line()}", ok=report.exit_code == 0)
    sys.exit(report.exit_code)


@main.command()
@click.option(
    "--dry-run", is_flag=True, help="Print exactly what would happen; send no DELETE, change no state."
)
@click.option("--max-delete", type=click.IntRange(min=0), help="Allow up to N orphan deletions for this run.")
@click.option(
    "--force", is_flag=True, help="Act even on an empty or far-too-small listing (max_missing guard)."
)
@click.option(
    "--min-orphan-age",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Two-pass mode: delete an orphan only if an earlier reconcile saw it at least SECONDS ago.",
)
@click.option(
    "--adopt",
    is_flag=True,
    help="First rebuild the state from the collection: each image that names a file of the source "
    "and holds its content becomes that file's synced row, with no upload (a lost state, a new host).",
)
@MAX_DURATION_OPTION
@UNTIL_OPTION
@click.option(
    "--would-delete-file",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PATH",
    help="With --dry-run: write every image it would delete to PATH, one JSON object a line "
    '({"id", "key", "reason"}); stderr and --json name only the first few and the count.',
)
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON summary object on stdout.")
@METRICS_OPTION
@pass_ctx
@handles_errors
def reconcile(
    obj: Ctx,
    dry_run: bool,
    max_delete: int | None,
    force: bool,
    min_orphan_age: float | None,
    adopt: bool,
    max_duration: str | None,
    until: str | None,
    would_delete_file: Path | None,
    json_mode: bool,
    metrics_file: Path | None,
) -> None:
    """Make the collection and the state agree: adopt, delete orphans, re-queue what is missing.

    The whole collection is listed first; nothing is changed while paging, and a listing that fails
    part-way changes nothing (exit 1). An orphan carrying the token of an interrupted upload is
    adopted; other orphans (images the state does not know) are deleted; synced files whose image is
    missing go back to pending for the next sync. Guards: more deletions than `limits.max_delete`
    (or --max-delete) is refused whole (exit 5); so is a listing that lacks more than
    `limits.max_missing` of the synced images (unless --force). With --adopt the state is first
    rebuilt from the collection (after a lost state file: then `sync` sends only what is missing).
    A listing cut by the deadline (--max-duration, --until) changes nothing (exit 7); one that would not
    fit in the request budget is refused up front (exit 4).
    A dry run names the first few images it would delete and counts them all; --would-delete-file
    lists every one (also when the guard would refuse).
    """
    from pipeline.commands import runs
    from pipeline.commands.heap import for_long_run
    from pipeline.engine.reconcile import ReconcileOptions
    from pipeline.output.reporter import make_reporter
    from pipeline.output.text import reconcile_lines

    if would_delete_file is not None and not dry_run:
        from pipeline.errors import ConfigError

        raise ConfigError("reconcile --would-delete-file needs --dry-run (a real run deletes them)")
    config = obj.config
    reporter = make_reporter(json_mode=json_mode)
    options = ReconcileOptions(
        dry_run=dry_run,
        max_delete=max_delete,
        force=force,
        min_orphan_age=min_orphan_age,
        shard=obj.shard,
        adopt=adopt,
        max_duration=_max_duration(max_duration, until),
        would_delete_file=would_delete_file,
    )
    for_long_run()
    report = asyncio.run(runs.reconcile(config, options, reporter))
    if not dry_run:
        write_metrics(metrics_file, "reconcile", report.to_json())
    if json_mode:
        emit_json(report.to_json())
    else:
        if report.error:
            echo(f"facesync: error: {report.error}", err=True)
        for line in reconcile_lines(report):  # -q: only in the log file when the run went well
            summary(line, ok=report.exit_code == 0)
    sys.exit(report.exit_code)
