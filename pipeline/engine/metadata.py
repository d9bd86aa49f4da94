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
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from pipeline.config import (
    KEY_FIELD,
    OWN_FIELDS,
    PHOTO_FIELDS,
    RESERVED_METADATA_KEYS,
    SHA_FIELD,
    TOKEN_FIELD,
    TRANSFORM_FIELD,
    FieldText,
    check_template,
)
from pipeline.keys import safe_key
from pipeline.sources.takeout import is_takeout, sidecar_fields


class MetadataBuilder:
    """Builds an image's metadata from its key and facts; pure."""

    def __init__(self, template: Mapping[str, str]) -> None:
        check_template(template)  # done at config load; again for a Config built in code
        self.template = dict(template)
        #: Whether the template names a photo field (``{people}``...): then the file's bytes are
        #: needed to build the metadata (:meth:`build`'s ``data``), and its content is in the signature.
        self.reads_file = any(
            f in PHOTO_FIELDS for t in self.template.values() for _, f, _, _ in string.Formatter().parse(t)
        )

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
