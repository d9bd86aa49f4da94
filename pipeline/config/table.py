"""The layout of a ``metadata_table`` CSV: which column is the key, which are template fields.

The config reads only the header (so a template naming a column it lacks is exit 2 at load);
:mod:`pipeline.engine.metadata` reads the rows, once per run, with the same :func:`layout` and
:func:`open_table`, so the two can never disagree on which column is the key.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from pipeline.config.model import FILE_FIELDS
from pipeline.errors import ConfigError

#: The column that holds the key, when the table has one so named; otherwise the first column does.
KEY_COLUMN = "key"


def open_table(path: Path, where: str = "metadata_table") -> TextIO:
    """The CSV, open for :mod:`csv` (a spreadsheet's UTF-8 byte-order mark dropped); ConfigError (the
    config's ``where``) when it cannot be read."""
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None


def layout(header: Sequence[str], where: str) -> tuple[int, tuple[str, ...]]:
    """The key column's index and the other columns' names, in order; ConfigError for a header that
    is empty, repeats a name, or names a column for a fact of the file (``size``, ``sha256``...)."""
    names = [h.strip() for h in header]
    if not names or not any(names):
        raise ConfigError(f"{where}: the first line must name the columns (the key first, or a 'key' one)")
    index = names.index(KEY_COLUMN) if KEY_COLUMN in names else 0
    fields = tuple(n for i, n in enumerate(names) if i != index)
    for n in fields:
        if not n:
            raise ConfigError(f"{where}: a column without a name")
        if fields.count(n) > 1:
            raise ConfigError(f"{where}: column {n!r} is named twice")
        if n in FILE_FIELDS:
            raise ConfigError(
                f"{where}: column {n!r} would hide the file's own {{{n}}}; rename it (only {{album}} and "
                "the photo fields, such as {people}, may be filled from the table)"
            )
    return index, fields


def table_fields(path: Path, where: str) -> tuple[str, ...]:
    """The template fields ``metadata_table`` gives: its header's columns other than the key's."""
    with open_table(path, where) as f:
        try:
            header = next(csv.reader(f), [])
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: {path} is not a readable CSV: {exc}") from None
    return layout(header, f"{where} ({path})")[1]
