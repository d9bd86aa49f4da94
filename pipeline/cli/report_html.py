"""``sync --report-html PATH``: the archive's HTML report written at the end of a run (for cron).

Like ``--metrics-file``: a report that cannot be written is a warning on stderr, and the run's exit
code stays what the run earned.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.output.terminal import echo

#: What ``facesync report`` shows unless told otherwise (``--runs``, ``--max-thumbnails``); also the
#: report ``sync --report-html`` writes. 500 thumbnails of 6-megapixel photos are ~2 MB of page and
#: ~7 s of one core (a JPEG's entropy decoding is the floor, even in draft mode): docs/reports.md.
DEFAULT_RUNS = 30
DEFAULT_MAX_THUMBNAILS = 500

REPORT_HTML_OPTION = click.option(
    "--report-html",
    metavar="PATH",
    type=click.Path(path_type=Path, dir_okay=False),
    help="At the end, write the HTML report (as `facesync report --html`) to PATH (atomically).",
)


def write_report_html(path: Path | None, config: Config) -> None:
    """Write the report if asked for; a failure is reported and changes nothing else."""
    if path is None:
        return
    from pipeline.commands.report import write_report  # Pillow only when asked for

    try:
        write_report(config, path, runs=DEFAULT_RUNS, max_thumbnails=DEFAULT_MAX_THUMBNAILS)
    except PipelineError as exc:
        echo(f"facesync: warning: HTML report not written: {exc}", err=True)
    except OSError as exc:
        echo(f"facesync: warning: HTML report not written to {path}: {exc.strerror or exc}", err=True)
