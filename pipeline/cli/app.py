"""The ``facesync`` group: global options, the config loaded on demand, errors mapped to exit codes.

The commands, flags, exit codes and ``--json`` outputs are a contract (docs/architecture.md):
scripts and cron jobs depend on them. Each command module imports what it runs only when it runs,
so ``facesync --help`` and ``status`` do not pay for the network stack.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.commands.shard import Shard, for_shard, parse_shard
from pipeline.config import DEFAULT_CONFIG_PATH, Config, config_location, load_config
from pipeline.errors import PipelineError
from pipeline.output.terminal import echo, log_through_shown, redact

F = TypeVar("F", bound=Callable[..., Any])

#: The contract's exit codes, and what each means for a run (``sync``'s table, the group's too).
EXIT_CODES = {
    0: "in step (rejected images are data, not failure)",
    1: "finished, but items are still failing (or uploads are unsettled), or the\n"
    "      service is failing and the run stopped sending",
    2: "usage or config error",
    3: "bad credentials",
    4: "quota spent (or the request budget): resumable, run again later",
    5: "refused by the max-delete guard: nothing deleted",
    6: "refused: this state has never sent an image, the collection holds some (lost state?)",
    7: "stopped by its deadline (--max-duration, --until): resumable",
    75: "another run holds the state lock",
    130: "interrupted (Ctrl-C): work in flight was recorded",
}


def exit_codes_help(codes: dict[int, str | None], title: str = "Exit codes:") -> str:
    """An epilog listing ``codes``: each with its own words, or (None) the contract's."""
    lines = [f"  {code:<3} {text if text is not None else EXIT_CODES[code]}" for code, text in codes.items()]
    return "\b\n" + title + "\n" + "\n".join(lines) + "\n"


EXIT_CODES_HELP = exit_codes_help(dict.fromkeys(EXIT_CODES))


def fail(message: str, code: int) -> None:
    echo(f"facesync: error: {message}", err=True)
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
            echo("facesync: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any, *, streamed: tuple[str, Iterable[str]] | None = None) -> None:
    """``obj`` as one JSON line on stdout; ``streamed`` (name, JSON texts) becomes its last member, a list
    written as it is read (a dry run's million planned actions are never a Python list)."""
    from pipeline.output.text import json_line

    text = json_line(obj)  # exact: JSON escapes what it must; click strips nothing (color=True)
    if streamed is None:
        click.echo(text, color=True)
        return
    name, items = streamed
    out = sys.stdout
    out.write(text[:-1] + ("," if len(obj) else "") + json_line(name) + ":[")
    for i, item in enumerate(items):
        out.write(("," if i else "") + item)
    out.write("]}\n")
    out.flush()


class Ctx:
    """What the group passes to its commands: the config path, loaded on demand."""

    def __init__(self, config_path: Path | None, shard_text: str | None = None) -> None:
        #: The config file in use: ``--config``, or where :func:`config_location` looks.
        self.config_path = config_location(config_path)
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
            hide_secret(config.api.api_key, config.api.api_secret)
            for note in config.notes:
                echo(f"facesync: note: {note}")
            shard = self.shard
            self._config = for_shard(config, shard) if shard is not None else config
        return self._config


def hide_secret(api_key: str, api_secret: str) -> None:
    """The secret, and the Basic credentials made of it, never shown nor logged (``--log-file``)."""
    import base64

    if api_secret:
        redact(api_secret)
        redact(base64.b64encode(f"{api_key}:{api_secret}".encode()).decode("ascii"))


def write_metrics(path: Path | None, command: str, summary: dict[str, Any]) -> None:
    """``--metrics-file``: a failure to write it is reported, and does not change the exit code."""
    if path is None:
        return
    from pipeline.output import metrics  # only when asked for: prometheus_client is not free to import

    try:
        metrics.write(path, command, summary)
    except OSError as exc:
        echo(f"facesync: warning: cannot write metrics to {path}: {exc.strerror or exc}", err=True)


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
    default=None,
    help=(
        f"YAML config file (relative paths in it are relative to its folder). Default: $FACESYNC_CONFIG, "
        f"else ~/.config/facesync/config.yaml if it exists, else {DEFAULT_CONFIG_PATH}."
    ),
)
@click.option(
    "--shard",
    "shard_text",
    metavar="I/N",
    help="Only the keys of shard I of N (I from 0), with its own state file and 1/N of limits.rate.",
)
@click.version_option(package_name="facesync")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, shard_text: str | None) -> None:
    """Keep a photo archive in step with a Face Search collection.

    \b
    Typical use:
      facesync sync --dry-run      # what would be sent and deleted
      facesync sync                # upload what changed, remove what is gone
      facesync reconcile           # make the collection and the state agree
      facesync status              # counts by status, last runs
      facesync search photo.jpg    # where else is this person? (local paths)
    """
    log_through_shown()
    ctx.obj = Ctx(config_path, shard_text)
