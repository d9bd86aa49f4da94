"""Where text meets a terminal or a log: every line of human output goes through :func:`shown`.

File names, S3 keys, sidecar values and the service's messages and metadata are not ours: a name can hold
a terminal escape (clear the screen, set the window title, rewrite the line) or a newline that forges a
``facesync: ...`` line in a cron mail. So each line of human output is shown with every control
character escaped — C0 and C1 controls and DEL as ``\\n``, ``\\t``, ``\\x1b``; bytes that are not UTF-8
(carried as surrogate escapes) as ``\\xNN``, as :func:`pipeline.keys.safe_key` shows them; Unicode's
bidirectional overrides and line separators, which reorder or break a line on display, as ``\\u202e`` —
and nothing else changes: a name in Vietnamese, an emoji, a backslash are shown as they are. A line is
one call: a message that needs two lines is two calls, so an escaped newline is always someone else's.

``--json`` is not human output: it keeps every string exact (JSON escapes what it must).

How much is said is the run's :data:`OUTPUT` (``-q``, ``-v``, ``-vv``), and ``--log-file`` appends a
timestamped copy of every message line (stderr's, not stdout's data) to a file. The API secret, once
:func:`redact` is told it, is never shown nor logged: not even an error message quoting it can.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import click

#: ``-q``: problems only; ``-v``: every file's action and each retry; ``-vv``: debug records as well.
QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2


@dataclass
class Output:
    """How much a run says (``verbosity``, one of :data:`QUIET` … :data:`DEBUG`), where it logs, and
    what it never shows."""

    verbosity: int = NORMAL
    log: TextIO | None = None
    secrets: tuple[str, ...] = ()

    @property
    def quiet(self) -> bool:
        return self.verbosity <= QUIET

    @property
    def verbose(self) -> bool:
        return self.verbosity >= VERBOSE


#: The process's output settings: set once by the command line's options, read by every line shown.
OUTPUT = Output()

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Format characters that change how a line reads without being seen: the bidirectional embeddings,
#: overrides and isolates ("Trojan Source"), the marks, and the line and paragraph separators.
INVISIBLE = (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029, 0xFEFF)


def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in (*range(0x20), *range(0x7F, 0xA0)):
        table[code] = _NAMED.get(chr(code), f"\\x{code:02x}")
    for code in INVISIBLE:
        table[code] = f"\\u{code:04x}"
    for code in range(0xD800, 0xE000):  # surrogates: undecodable bytes of a name (0xDC80..), or lone ones
        table[code] = f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"
    return table


_TABLE = _table()


def shown(text: object) -> str:
    """``text`` as one line that is safe to print: controls, undecodable bytes and invisible reordering
    characters escaped, the secret (:func:`redact`) hidden, the rest as it is."""
    line = str(text).translate(_TABLE)
    for secret in OUTPUT.secrets:
        line = line.replace(secret, "***")
    return line


def redact(secret: str) -> None:
    """Never show ``secret`` (the API secret) in a line of output or of the log file: it becomes ``***``.
    Too short a value is not redacted: hiding every ``a`` would hide nothing and garble everything."""
    if len(secret) >= 4 and secret not in OUTPUT.secrets:
        OUTPUT.secrets = (*OUTPUT.secrets, secret)


def set_verbosity(verbosity: int) -> None:
    """``-q`` / ``-v`` / ``-vv``: how much the run says, and how much of the package's log it shows."""
    OUTPUT.verbosity = max(QUIET, min(DEBUG, verbosity))
    level = {QUIET: logging.WARNING, NORMAL: logging.WARNING, VERBOSE: logging.INFO}.get(
        OUTPUT.verbosity, logging.DEBUG
    )
    logger = logging.getLogger("pipeline")
    logger.setLevel(level)
    for handler in logger.handlers:
        if isinstance(handler, _EchoHandler):
            handler.setLevel(level)


def open_log(path: Path) -> None:
    """``--log-file PATH``: append every message line to ``path`` from now on (made if missing)."""
    OUTPUT.log = path.open("a", encoding="utf-8", errors="backslashreplace", buffering=1)


def logged(line: str) -> None:
    """A message line (already :func:`shown`) also to the log file, if there is one, timestamped."""
    log = OUTPUT.log
    if log is None:
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        log.write(f"{stamp} [{os.getpid()}] {line}\n")
    except OSError:  # a log that cannot be written (a full disk) must not stop the run: say it once
        OUTPUT.log = None
        click.echo(shown(f"facesync: warning: cannot write the log file: {log.name}"), err=True)


def echo(line: object, *, err: bool = True) -> None:
    """Print one line of human output (on stderr unless ``err`` is false), shown safely; a line on
    stderr goes to the log file too."""
    text = shown(line)
    click.echo(text, err=err)
    if err:
        logged(text)


def summary(line: object, *, ok: bool) -> None:
    """A run's last line: on stderr unless ``-q`` and the run went well (``ok``); always in the log."""
    text = shown(line)
    if not (OUTPUT.quiet and ok):
        click.echo(text, err=True)
    logged(text)


def echo_lines(lines: Iterable[object], *, err: bool = False) -> None:
    """Print each of ``lines`` as :func:`echo` does (on stdout unless ``err``)."""
    for line in lines:
        echo(line, err=err)


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal: data formats (``ls --format csv``) are shown safely only there."""
    return sys.stdout.isatty()


class _EchoHandler(logging.Handler):
    """The package's log records (a retry, an S3 key listed but gone) as lines of human output."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            echo(f"facesync: {record.getMessage()}")
        except Exception:  # logging must never break a run
            self.handleError(record)


def log_through_shown() -> None:
    """Send the ``pipeline`` loggers' records to stderr through :func:`shown` (once per process), instead
    of Python's last-resort handler, which prints a message raw."""
    logger = logging.getLogger("pipeline")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
        set_verbosity(OUTPUT.verbosity)  # the level: -q, -v, -vv
