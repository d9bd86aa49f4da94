"""``-v`` / ``-q`` / ``--log-file``: how much a run says, and a log file that keeps it (rclone's habits).

They are accepted before the command (``facesync -v sync``) and after it (``facesync sync -v``), as
operators type them. Each sets :data:`pipeline.output.terminal.OUTPUT` while the command line is parsed,
before the command runs, so every line the run prints — and every one it logs — follows it.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.output import terminal

VERBOSE_HELP = (
    "Say more: -v names every file's action (sent, renamed, removed; in a dry run, planned) and each "
    "retry; -vv adds debug records."
)
QUIET_HELP = (
    "Say only what needs attention (failures, refusals, errors): no progress, no notes, and no summary "
    "line when the run ends with exit 0."
)
LOG_FILE_HELP = (
    "Also append every message line to PATH, timestamped (the secret never appears: it is shown as ***). "
    "stdout's data (ls, --json) is not logged."
)

#: Which of -v and -q this command line gave (they exclude each other, wherever each was given).
_given: set[str] = set()


def _verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        _given.add("-v")
        _exclusive(ctx)
        terminal.set_verbosity(max(terminal.OUTPUT.verbosity, terminal.NORMAL) + value)


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _given.add("-q")
        _exclusive(ctx)
        terminal.set_verbosity(terminal.QUIET)


def _exclusive(ctx: click.Context) -> None:
    if len(_given) > 1:
        raise click.UsageError("give -v or -q, not both", ctx=ctx)


def _log_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is None:
        return
    try:
        terminal.open_log(value)
    except OSError as exc:
        why = exc.strerror or exc
        raise click.BadParameter(f"cannot append to {value}: {why}", ctx=ctx, param=param) from None


def options() -> list[click.Parameter]:
    """Fresh ``-v``, ``-q`` and ``--log-file`` options (a parameter object belongs to one command)."""
    return [
        click.Option(
            ["-v", "--verbose"], count=True, expose_value=False, callback=_verbose, help=VERBOSE_HELP
        ),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_quiet, help=QUIET_HELP),
        click.Option(
            ["--log-file"],
            type=click.Path(path_type=Path, dir_okay=False),
            metavar="PATH",
            expose_value=False,
            callback=_log_file,
            help=LOG_FILE_HELP,
        ),
    ]
