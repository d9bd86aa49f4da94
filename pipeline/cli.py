"""The command line: parse, load config, call one function, map errors to exit codes.

The commands, flags, exit codes and ``--json`` outputs are a contract (docs/architecture.md):
scripts and cron jobs depend on them.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline import commands
from pipeline.commands.shard import Shard, for_shard, parse_shard
from pipeline.config import DEFAULT_CONFIG_PATH, Config, load_config
from pipeline.engine.sync import SyncOptions
from pipeline.errors import EXIT_FAILED, PipelineError
from pipeline.keys import safe_key
from pipeline.output import metrics
from pipeline.output.reporter import make_reporter

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = """\b
Exit codes:
  0   in step (rejected images are data, not failure)
  1   finished, but items are still failing after retries
  2   usage or config error
  3   bad credentials
  4   quota spent: resumable, run again later
  5   refused by the max-delete guard: nothing deleted
  75  another run holds the state lock
  130 interrupted (Ctrl-C): work in flight was recorded
"""


def fail(message: str, code: int) -> None:
    click.echo(f"facesync: error: {message}", err=True)
    sys.exit(code)


def handles_errors(fn: F) -> F:
    """Turn the pipeline's known errors into one line on stderr and the contract's exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("facesync: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def run_line(run: dict[str, Any]) -> str:
    """One run of the runs table, for humans."""
    started = run.get("started_at")
    when = datetime.fromtimestamp(started).isoformat(sep=" ", timespec="seconds") if started else "?"
    code = run.get("exit_code")
    end = "still running or killed" if code is None else f"exit {code}"
    return f"#{run.get('id')} {run.get('command')} at {when}: {end}"


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, default=str, ensure_ascii=False))


class Ctx:
    """What the group passes to its commands: the config path, loaded on demand."""

    def __init__(self, config_path: Path, shard_text: str | None = None) -> None:
        self.config_path = config_path
        self.shard_text = shard_text
        self._config: Config | None = None

    @property
    def shard(self) -> Shard | None:
        return parse_shard(self.shard_text) if self.shard_text is not None else None

    @property
    def config(self) -> Config:
        """The config file's, or with ``--shard`` this shard's (own state file, share of the rate)."""
        if self._config is None:
            config = load_config(self.config_path)
            shard = self.shard
            self._config = for_shard(config, shard) if shard is not None else config
        return self._config


def write_metrics(path: Path | None, command: str, summary: dict[str, Any]) -> None:
    """``--metrics-file``: a failure to write it is reported, and does not change the exit code."""
    if path is None:
        return
    try:
        metrics.write(path, command, summary)
    except OSError as exc:
        click.echo(f"facesync: warning: cannot write metrics to {path}: {exc.strerror or exc}", err=True)


METRICS_OPTION = click.option(
    "--metrics-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write Prometheus textfile-collector metrics of this run to PATH (atomically).",
)


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="YAML config file.",
)
@click.option(
    "--shard",
    "shard_text",
    metavar="I/N",
    help="Only the keys of shard I of N (I from 0), with its own state file and 1/N of limits.rate.",
)
@click.version_option(package_name="facesync")
@click.pass_context
def main(ctx: click.Context, config_path: Path, shard_text: str | None) -> None:
    """Keep a photo archive in step with a Face Search collection.

    \b
    Typical use:
      facesync sync --dry-run      # what would be sent and deleted
      facesync sync                # upload what changed, remove what is gone
      facesync reconcile           # make the collection and the state agree
      facesync status              # counts by status, last runs
      facesync search photo.jpg    # where else is this person? (local paths)
    """
    ctx.obj = Ctx(config_path, shard_text)


@main.command()
@click.option(
    "--dry-run", is_flag=True, help="Show what would be sent and deleted; send nothing, change nothing."
)
@click.option("--max-delete", type=click.IntRange(min=0), help="Allow up to N remote deletions for this run.")
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON summary object on stdout.")
@METRICS_OPTION
@pass_ctx
@handles_errors
def sync(obj: Ctx, dry_run: bool, max_delete: int | None, json_mode: bool, metrics_file: Path | None) -> None:
    """Upload new and changed images, delete those gone from the source.

    Only what changed since the last run is sent: a file whose size and mtime are unchanged is not
    even read. A crash at any moment loses nothing; run `facesync reconcile` to settle uploads whose
    answers were lost. Removals over `limits.max_delete` are refused as a whole (exit 5).
    """
    config = obj.config
    reporter = make_reporter(json_mode=json_mode)
    options = SyncOptions(dry_run=dry_run, max_delete=max_delete, shard=obj.shard)
    report = asyncio.run(commands.sync(config, options, reporter))
    if not dry_run:
        write_metrics(metrics_file, "sync", report.to_json())
    if json_mode:
        emit_json(report.to_json())
    else:
        if report.error:
            click.echo(f"facesync: error: {report.error}", err=True)
        click.echo(f"facesync: {report.summary_line()}", err=True)
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
    json_mode: bool,
    metrics_file: Path | None,
) -> None:
    """Make the collection and the state agree: adopt, delete orphans, re-queue what is missing.

    The whole collection is listed first; nothing is changed while paging, and a listing that fails
    part-way changes nothing (exit 1). An orphan carrying the token of an interrupted upload is
    adopted; other orphans (images the state does not know) are deleted; synced files whose image is
    missing go back to pending for the next sync. Guards: more deletions than `limits.max_delete`
    (or --max-delete) is refused whole (exit 5); so is a listing that lacks more than
    `limits.max_missing` of the synced images (unless --force).
    """
    from pipeline.engine.reconcile import ReconcileOptions

    config = obj.config
    reporter = make_reporter(json_mode=json_mode)
    options = ReconcileOptions(
        dry_run=dry_run, max_delete=max_delete, force=force, min_orphan_age=min_orphan_age, shard=obj.shard
    )
    report = asyncio.run(commands.reconcile(config, options, reporter))
    if not dry_run:
        write_metrics(metrics_file, "reconcile", report.to_json())
    if json_mode:
        emit_json(report.to_json())
    else:
        if report.error:
            click.echo(f"facesync: error: {report.error}", err=True)
        title = "reconcile (dry run)" if dry_run else "reconcile"
        click.echo(f"facesync: {title}", err=True)
        for name, value in report.table():
            click.echo(f"  {name:<22} {value:>8}", err=True)
        click.echo(f"  {'elapsed':<22} {report.elapsed:>7.1f}s", err=True)
        click.echo(f"  {'exit code':<22} {report.exit_code:>8}", err=True)
    sys.exit(report.exit_code)


@main.command()
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout.")
@pass_ctx
@handles_errors
def status(obj: Ctx, json_mode: bool) -> None:
    """Counts of files by status, pending remote deletes, and the last runs."""
    info = commands.status(obj.config)
    if json_mode:
        emit_json(info)
        return
    click.echo(f"state   {info['state']}")
    click.echo(f"source  {info['source']}")
    click.echo(f"api     {info['api']}")
    click.echo(f"files   {info['total']}")
    for name, n in sorted(info["counts"].items()):
        click.echo(f"  {name:<10} {n}")
    if info["pending_remote_deletes"]:
        click.echo(f"pending remote deletes  {info['pending_remote_deletes']}")
    for run in info["last_runs"]:
        click.echo(f"last run {run_line(run)}")


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
    from pipeline.state import State, Status

    if json_mode:
        fmt = "json"
    columns = ["key", "status", "remote_id", "size", "code", "message", "sha256"]
    writer = csv.writer(sys.stdout) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(columns)
    with State.open(obj.config.state.path) as state:
        for row in state.rows(Status(status_filter) if status_filter else None):
            values = {
                "key": safe_key(row.key),
                "status": row.status.value,
                "remote_id": row.remote_id,
                "size": row.size,
                "code": row.code,
                "message": row.message,
                "sha256": row.sha256,
            }
            if writer is not None:
                writer.writerow(["" if values[c] is None else values[c] for c in columns])
            elif fmt == "json":
                emit_json(values)
            else:
                rid = "" if row.remote_id is None else str(row.remote_id)
                extra = (
                    f"  [{row.code}] {row.message}"
                    if row.code is not None
                    else (f"  {row.message}" if row.message else "")
                )
                click.echo(f"{row.status.value:<9} {rid:<26} {values['key']}{extra}")


CHECK_EXIT_CODES_HELP = """\b
Exit codes:
  0   the endpoint answered and accepted the credentials
  1   unreachable host (or an answer not in the documented shape)
  2   usage or config error
  3   bad credentials
  4   the service is throttling (out of requests) right now
"""


@main.command(epilog=CHECK_EXIT_CODES_HELP)
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout.")
@pass_ctx
@handles_errors
def check(obj: Ctx, json_mode: bool) -> None:
    """Validate the config and reach the endpoint with one cheap call (a one-image listing page).

    Prints one line: OK with the endpoint and the images on that page, or why not. No retries: an
    unreachable host fails within `api.connect_timeout`. --json prints ok, endpoint, images, error
    and exit_code.
    """
    from pipeline.errors import ConfigError

    try:
        config = obj.config
    except ConfigError as exc:
        if not json_mode:
            raise
        result: dict[str, Any] = {"ok": False, "endpoint": None, "images": None, "error": str(exc)}
        result["exit_code"] = exc.exit_code
    else:
        result = commands.check(config)
    if json_mode:
        emit_json(result)
    elif result["ok"]:
        click.echo(
            f"facesync: OK: {result['endpoint']} answered; {result['images']} image(s) on the first page",
            err=True,
        )
    else:
        click.echo(f"facesync: error: {result['error']}", err=True)
    sys.exit(result["exit_code"])


@main.command()
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout.")
@pass_ctx
@handles_errors
def search(obj: Ctx, image: Path, json_mode: bool) -> None:
    """Find the images of the collection that match IMAGE, with the local file each came from.

    Each match shows its remote id, its url and the key (and path) of the archive file it was
    uploaded from; a match the state does not know (added by hand or by another tool) is marked
    "not from this archive".
    """
    from pipeline.commands.search import search as run_search

    matches = asyncio.run(run_search(obj.config, image))
    if json_mode:
        emit_json({"image": str(image), "matches": matches})
        return
    if not matches:
        click.echo(f"facesync: no match for {image}", err=True)
        return
    for m in matches:
        score = f"{m['score']:.2f}" if isinstance(m["score"], int | float) else "   -"
        where = m["path"] or m["key"] if m["known"] else "(not from this archive)"
        click.echo(f"{score}  {m['id']!s:<26} {safe_key(str(where))}  {m['url'] or ''}")


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
    from pipeline.state import State, Status
    from pipeline.state.lock import StateLock

    with StateLock(obj.config.state.path, command="retry"), State.open(obj.config.state.path) as state:
        n = state.requeue(Status(s) for s in statuses)
    click.echo(f"facesync: queued {n} file(s) again; run `facesync sync` to send them", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free)."
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("state/emulator-serve"),
    show_default=True,
    help="Where the emulator keeps its images.",
)
@click.option("--api-key", default="demo-key", show_default=True, help="The key clients must send.")
@click.option(
    "--api-secret",
    default="demo-secret",
    show_default=True,
    envvar="FACESYNC_EMULATOR_SECRET",
    help="The secret clients must send (or FACESYNC_EMULATOR_SECRET).",
)
@handles_errors
def serve(host: str, port: int, data_dir: Path, api_key: str, api_secret: str) -> None:
    """Run the Face Search emulator standalone (the API at /api/v2/face_search).

    It speaks the five calls with the documented answers, so you can try facesync, or your own
    scripts, without an account. Search finds near-duplicates by a perceptual hash (no face model).
    Knobs (rate limit, quota, faults) can be changed while it runs: POST /_emulator/settings.
    """
    from pipeline.emulator import EmulatorSettings, serve_forever

    settings = EmulatorSettings(api_key=api_key, api_secret=api_secret)

    def ready(base_url: str) -> None:
        click.echo(
            f"facesync: emulator serving {base_url} (key {api_key}; data in {data_dir}); Ctrl-C stops",
            err=True,
        )

    try:
        asyncio.run(serve_forever(host, port, data_dir, settings, ready=ready))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_FAILED)


# The exit codes are part of the contract: every command's --help ends with them, not only the group's
# (serve is the emulator, outside the contract).
for _name, _command in main.commands.items():
    if _name != "serve" and not _command.epilog:
        _command.epilog = EXIT_CODES_HELP
