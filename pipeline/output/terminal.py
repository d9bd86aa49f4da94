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
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import click

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
    characters escaped, the rest as it is."""
    return str(text).translate(_TABLE)


def echo(line: object, *, err: bool = True) -> None:
    """Print one line of human output (on stderr unless ``err`` is false), shown safely."""
    click.echo(shown(line), err=err)


def echo_lines(lines: Iterable[object], *, err: bool = False) -> None:
    """Print each of ``lines`` as :func:`echo` does (on stdout unless ``err``)."""
    for line in lines:
        click.echo(shown(line), err=err)


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


def log_through_shown(level: int = logging.WARNING) -> None:
    """Send the ``pipeline`` loggers' records to stderr through :func:`shown` (once per process), instead
    of Python's last-resort handler, which prints a message raw."""
    logger = logging.getLogger("pipeline")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        handler = _EchoHandler(level)
        logger.addHandler(handler)
