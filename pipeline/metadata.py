"""The metadata sent with each image: the pipeline's own fields plus the user's template.

Every image carries ``facesync_token`` (the crash-safety token reconcile adopts by) and
``facesync_key`` (the source key, so a listing names the file). ``metadata:`` in the config adds
fields from a template (``{key}``, ``{name}``, ``{stem}``, ``{parent}``, ``{album}``, ``{size}``,
``{mtime}``, ``{sha256}``).
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from pipeline.config import KEY_FIELD, TOKEN_FIELD
from pipeline.errors import ConfigError

FIELDS = ("key", "name", "stem", "parent", "album", "size", "mtime", "sha256")


def check_template(template: Mapping[str, str], where: str = "metadata") -> None:
    """Refuse a template that names an unknown field or is malformed (exit 2 at config load)."""
    for name, text in template.items():
        try:
            used = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        except ValueError as exc:
            raise ConfigError(f"{where}.{name}: bad template {text!r}: {exc}") from None
        for f in used:
            if f not in FIELDS:
                raise ConfigError(f"{where}.{name}: unknown field {{{f}}} (known: {', '.join(FIELDS)})")


class MetadataBuilder:
    """Builds an image's metadata from its key and facts; pure."""

    def __init__(self, template: Mapping[str, str]) -> None:
        check_template(template)
        self.template = dict(template)

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

    def build(self, key: str, *, token: str, size: int, mtime_ns: int, sha256: str | None) -> dict[str, Any]:
        safe = key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        out: dict[str, Any] = {}
        if self.template:
            values = self.fields(safe, size=size, mtime_ns=mtime_ns, sha256=sha256)
            out.update({name: text.format(**values) for name, text in self.template.items()})
        out[KEY_FIELD] = safe
        out[TOKEN_FIELD] = token
        return out

    @staticmethod
    def digest(metadata: Mapping[str, Any]) -> str:
        """A stable hash of the metadata minus the token: it changes only when what we send changes."""
        content = {k: v for k, v in metadata.items() if k != TOKEN_FIELD}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
