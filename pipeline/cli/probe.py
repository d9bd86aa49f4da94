"""``facesync probe``: what the service really does, measured in a minute, written as its profile."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from pipeline.cli.app import Ctx, emit_json, fail, handles_errors, main, pass_ctx
from pipeline.errors import Fatal
from pipeline.output.terminal import echo, echo_lines

PROBE_EXIT_CODES_HELP = """\b
Exit codes:
  0   measured; the probe's own images are gone
  1   a probe image may be left (the next probe or reconcile removes it),
      or the service failed part-way
  2   usage or config error
  3   bad credentials
  4   quota spent: run again later
  75  another probe holds this profile
"""


@main.command(epilog=PROBE_EXIT_CODES_HELP)
@click.option(
    "--image",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A photo with a face (JPEG or PNG) to add and delete; default: one from the archive.",
)
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--yes", is_flag=True, help="Do not ask before adding and deleting the probe's own images.")
@pass_ctx
@handles_errors
def probe(obj: Ctx, image: Path | None, json_mode: bool, yes: bool) -> None:
    """Measure what the API page leaves open, and write the service profile facesync then uses.

    About 15-30 requests, one at a time: wrong credentials, the listing, a junk search (the body
    limit), then — confirmed, or with --yes — two adds of a tagged copy of the photo, DELETEs of
    made-up ids (the delete cap), and the deletion of its own images, checked in the listing. It
    never touches another image. The profile goes beside the state (or to api.profile): page size,
    delete batch and the file size limit follow it. docs/service.md says what each answer changes.
    """
    from pipeline.commands.probe import probe as run_probe
    from pipeline.probe.table import lines

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            return False
        return click.confirm(f"facesync: {question}", default=False, err=True)

    config = obj.config
    report = asyncio.run(run_probe(config, image, confirm))
    if json_mode:
        emit_json(report.to_json())
        sys.exit(report.exit_code)
    out = report.outcome
    if isinstance(out.error, Fatal) and not out.added:  # bad credentials, not the API: nothing to show
        fail(str(out.error), report.exit_code)
    echo(
        f"facesync: probe of {config.api.base_url}: {out.profile.requests} requests; image: {report.image}",
        err=True,
    )
    echo_lines(lines(out, config), err=True)
    for note in [*out.notes, *([out.skipped] if out.skipped else [])]:
        echo(f"facesync: note: {note}", err=True)
    if report.error:
        echo(f"facesync: error: {report.error}", err=True)
    if report.written:
        echo(f"facesync: profile written to {report.path}", err=True)
    sys.exit(report.exit_code)
