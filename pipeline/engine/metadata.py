"""The metadata sent with each image: the pipeline's own fields plus the user's template.

Every image carries ``facesync_token`` (the crash-safety token reconcile adopts by),
``facesync_key`` (the source key, so a listing names the file) and ``facesync_sha256`` (its
content, so ``reconcile --adopt`` can rebuild a lost state without an upload); an image sent through
``transform:`` also ``facesync_transform``, the settings it was made with (the size and sha256 stay
the file's own). ``metadata:`` adds
fields from a template (``{key}``, ``{name}``, ``{stem}``, ``{parent}``, ``{album}``, ``{size}``,
``{mtime}``, ``{sha256}``) and the photo's own (:data:`~pipeline.config.PHOTO_FIELDS`: ``{people}``,
``{taken}``...), taken from its sidecar first, then its XMP, then its EXIF (:mod:`pipeline.engine.photo`).
They are read from bytes already read for the upload: what the file says is a function of its content
(``sha256``) and its sidecar (the stamp), which is what the signature hashes, so an edited sidecar is a
PUT, never an upload.

``metadata_table:`` (a CSV, :class:`MetadataTable`) adds a field per column, its value the cell of the
file's row (empty without one); a column named for ``{album}`` or a photo field fills it where its cell
is not empty. The row's values are part of the rendered template, so the signature holds them: editing
one row is one PUT.
"""

from __future__ import annotations

import csv
import hashlib
import json
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.config import (
    KEY_FIELD,
    OWN_FIELDS,
    PHOTO_FIELDS,
    RESERVED_METADATA_KEYS,
    SHA_FIELD,
    TEMPLATE_FIELDS,
    TOKEN_FIELD,
    TRANSFORM_FIELD,
    Config,
    FieldText,
    check_template,
)
from pipeline.config.table import layout, open_table
from pipeline.errors import ConfigError
from pipeline.keys import safe_key
from pipeline.sources.takeout import is_takeout, sidecar_fields


class MetadataTable:
    """The rows of a ``metadata_table`` CSV, by key: read once per run, held as a dict.

    A row costs its key and a tuple of its cells; a cell's text is kept once however many rows repeat
    it (an album's name, a photographer's). Measured (tracemalloc, 200,000 rows): about 350 bytes a row
    for a usual export (a 40-character key, five columns, albums and names repeated), 570 with every
    cell distinct — a million rows is 350-600 MB, so a table far larger wants splitting by source.
    """

    def __init__(self, fields: tuple[str, ...], rows: Mapping[str, tuple[str, ...]]) -> None:
        self.fields = fields
        self.rows = rows
        self._empty = {f: FieldText("") for f in fields}

    @classmethod
    def read(cls, path: Path, where: str = "metadata_table") -> MetadataTable:
        """Read the whole CSV: the first column (or the one named ``key``) is the key, a key given
        twice keeps its last row, a short row's missing cells are empty. ConfigError when unreadable."""
        rows: dict[str, tuple[str, ...]] = {}
        seen: dict[str, str] = {}
        with open_table(path, where) as f:
            try:
                reader = csv.reader(f)
                index, fields = layout(next(reader, []), f"{where} ({path})")
                width = len(fields) + 1
                for record in reader:
                    if not record or not record[index].strip():
                        continue
                    cells = [seen.setdefault(c, c) for c in record[:width]]
                    cells += [""] * (width - len(cells))
                    key = cells.pop(index).strip()
                    rows[key] = tuple(cells)
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ConfigError(f"{where}: {path} is not a readable CSV: {exc}") from None
        return cls(fields, rows)

    def values(self, key: str) -> dict[str, FieldText]:
        """The table's fields for ``key``: its row's cells, or every field empty."""
        row = self.rows.get(key)
        if row is None:
            return self._empty
        return {f: FieldText(v) for f, v in zip(self.fields, row, strict=True)}


class MetadataBuilder:
    """Builds an image's metadata from its key and facts (and its row of ``metadata_table``); pure."""

    def __init__(self, template: Mapping[str, str], table: MetadataTable | None = None) -> None:
        check_template(template, table=table.fields if table else ())  # as at config load
        self.template = dict(template)
        self.table = table
        #: Whether the template names a photo field (``{people}``...): then the file's bytes are
        #: needed to build the metadata (:meth:`build`'s ``data``), and its content is in the signature.
        self.reads_file = any(
            f in PHOTO_FIELDS for t in self.template.values() for _, f, _, _ in string.Formatter().parse(t)
        )

    @classmethod
    def for_config(cls, config: Config) -> MetadataBuilder:
        """The builder of ``config``'s ``metadata:``, with its ``metadata_table`` read (once: keep it)."""
        table = MetadataTable.read(config.metadata_table) if config.metadata_table is not None else None
        return cls(config.metadata, table)

    def _table_values(self, key: str) -> dict[str, FieldText]:
        """The table's fields for ``key``, less the empty cells of a column that names a built-in field
        (the file's own value then stands)."""
        if self.table is None:
            return {}
        return {f: v for f, v in self.table.values(key).items() if v or f not in _BUILT_IN}

    def fields(self, key: str, *, size: int, mtime_ns: int, sha256: str | None) -> dict[str, Any]:
        path = PurePosixPath(key)
        parts = path.parts
        return {
            "key": key,
            "name": path.name,
            "stem": path.stem,
            "parent": str(path.parent) if len(parts) > 1 else "",
            "album": parts[0] if len(parts) > 1 else "",
            "size": size,
            "mtime": datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC).isoformat(timespec="seconds"),
            "sha256": sha256 or "",
        }

    def build(
        self,
        key: str,
        *,
        token: str,
        size: int,
        mtime_ns: int,
        sha256: str | None,
        sidecar: Mapping[str, Any] | None = None,
        transform: str | None = None,
        data: bytes | None = None,
    ) -> dict[str, Any]:
        """The metadata to send: the template's fields, then the sidecar's (more specific), then ours
        (``transform`` is the signature of the settings the image was made with, None: the file itself).

        ``data`` is the file's bytes, read when :attr:`reads_file` (the photo fields come from the
        sidecar, else its XMP, else its EXIF). A Google Takeout sidecar gives photo fields only; a plain
        one is merged as well. Keys the service reserves (``user``, ``encoding``, ``_id``) or that the
        pipeline writes are dropped from a sidecar: see :func:`reserved_in`.
        """
        safe = safe_key(key)
        out: dict[str, Any] = {}
        if self.template:
            values = self.fields(safe, size=size, mtime_ns=mtime_ns, sha256=sha256)
            if self.reads_file:
                from pipeline.engine.photo import photo_fields  # Pillow, defusedxml: only when used

                found = photo_fields(data) if data else {}
                found.update(sidecar_fields(sidecar) if sidecar else {})
                values.update({f: FieldText(found.get(f, "")) for f in PHOTO_FIELDS})
            values.update(self._table_values(key))
            out.update({name: text.format(**values) for name, text in self.template.items()})
        if sidecar and not is_takeout(sidecar):
            out.update({k: v for k, v in sidecar.items() if k not in _RESERVED})
        out[KEY_FIELD] = safe
        out[TOKEN_FIELD] = token
        if sha256:
            out[SHA_FIELD] = sha256
        if transform:
            out[TRANSFORM_FIELD] = transform
        return out

    def signature(
        self, key: str, *, size: int, mtime_ns: int, sha256: str | None, sidecar: str | None
    ) -> str:
        """What the metadata depends on, computed without I/O: the template's output and the sidecar's
        stamp. Stored as ``meta_hash``; a change means a metadata update (PUT), not an upload."""
        plain = self.stamp_signature(sidecar)
        if plain is not None:
            return plain
        stamp = sidecar or ""
        safe = safe_key(key)
        values = self.fields(safe, size=size, mtime_ns=mtime_ns, sha256=sha256)
        content = ""
        if self.reads_file:  # the photo fields are the content's and the sidecar's (the stamp)
            values.update({f: FieldText(f"<{f}>") for f in PHOTO_FIELDS})
            content = f"|{sha256 or ''}"
        values.update(self._table_values(key))
        rendered = json.dumps({n: t.format(**values) for n, t in self.template.items()}, sort_keys=True)
        return hashlib.sha256((rendered + content).encode()).hexdigest()[:16] + "|" + stamp

    def stamp_signature(self, sidecar: str | None) -> str | None:
        """:meth:`signature` when it depends on nothing but the sidecar's stamp (no template, the usual
        config), so a caller can skip the key and the file's facts; None when there is a template."""
        return None if self.template else f"|{sidecar or ''}"


def reserved_in(sidecar: Mapping[str, Any]) -> list[str]:
    """The keys of a sidecar that are dropped because the service or the pipeline owns them."""
    return sorted(k for k in sidecar if k in _RESERVED)


_RESERVED = frozenset(RESERVED_METADATA_KEYS | OWN_FIELDS)
#: The built-in fields a table column may fill (where its cell is not empty).
_BUILT_IN = frozenset(TEMPLATE_FIELDS)
