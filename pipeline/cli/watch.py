"""``facesync watch``: keep a directory source in step continuously (pipeline/commands/watch.py)."""

from __future__ import annotations

import asyncio
import sys

import click

from pipeline.cli.app import Ctx, emit_json, handles_errors, main, pass_ctx
from pipeline.output.terminal import echo, summary


@main.command()
@click.option(
    "--rescan",
    type=click.FloatRange(min=0, min_open=True),
    default=6.0,
    show_default=True,
    metavar="HOURS",
    help="A full sync pass every HOURS even without a file event (inotify drops events on overflow).",
)
@click.option(
    "--debounce",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="A burst of changes is one batch once the tree has been quiet this long.",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="A changed file is sent once its size and mtime have held still this long.",
)
@click.option("--allow-foreign", is_flag=True, help="As `sync --allow-foreign`.")
@click.option("--json", "json_mode", is_flag=True, help="One JSON summary object per pass on stdout.")
@pass_ctx
@handles_errors
def watch(
    obj: Ctx, rescan: float, debounce: float, settle: float, allow_foreign: bool, json_mode: bool
) -> None:
    """Keep a directory source in step continuously: a sync pass after each burst of changes.

    File events (inotify, through watchfiles) gather into a batch until the tree is quiet for
    --debounce seconds; each changed file must stop changing for --settle seconds (a file still being
    written is waited for); then one sync pass runs — the same state, lock, limits, transform and
    metadata as `facesync sync`. A full pass runs at the start (after a crash it settles what was in
    flight) and every --rescan hours. A pass that finds the lock held waits for the next change.
    Ctrl-C / SIGTERM stop it (exit 130). Only a directory source: an S3 manifest or zips exit 2.
    """
    from pipeline.commands.watch import WatchOptions, watch
    from pipeline.engine.sync import SyncOptions
    from pipeline.output.reporter import make_reporter
    from pipeline.output.summary import SyncReport

    def on_pass(report: SyncReport) -> None:
        if json_mode:
            emit_json(report.to_json())
        else:
            if report.error:
                echo(f"facesync: error: {report.error}", err=True)
            summary(f"facesync: watch: {report.summary_line()}", ok=report.exit_code == 0)

    options = WatchOptions(
        rescan=rescan * 3600.0,
        debounce=debounce,
        settle=settle,
        sync=SyncOptions(shard=obj.shard, allow_foreign=allow_foreign),
    )
    from pipeline.commands.heap import for_long_run

    for_long_run()
    code = asyncio.run(watch(obj.config, options, lambda: make_reporter(json_mode=json_mode), on_pass))
    sys.exit(code)
