"""``facesync search IMAGE``: who else is in the archive? Matches mapped back to local files.

The service answers remote ids and urls; the state knows which file each id came from, so every
match is shown with its key (and, for a directory source, its path). An id the state does not know
(an image added by hand, or by another tool) is marked as such. With ``transform:`` on, the query is
sent as the archive's images were (a HEIC converted, a large photo scaled down).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.commands.runtime import open_client
from pipeline.config import Config
from pipeline.engine.images import sniff
from pipeline.engine.transform import Transformer, read_limit
from pipeline.errors import ConfigError, Skipped
from pipeline.state import State


def read_query(path: Path, max_bytes: int) -> bytes:
    """The photo to search with; a usage error (exit 2) when it is not a readable image."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(f"{path}: {size} bytes, over limits.max_image_bytes ({max_bytes})")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the image: {exc.strerror or exc}") from None
    if not data or sniff(data) is None:
        raise ConfigError(f"{path}: not an image (no known image signature)")
    return data


async def search(config: Config, image: Path) -> list[dict[str, Any]]:
    """The matches for ``image``, best first, each with its local key and path where known."""
    data = read_query(image, read_limit(config))
    try:
        async with Transformer(config) as transformer:
            data = await transformer.prepare(data, sniff(data) or "")
    except Skipped as exc:
        raise ConfigError(f"{image}: cannot be sent: {exc}") from None
    with State.open(config.state.path, create=False) as state:  # refused before a request is spent
        async with open_client(config) as client:
            matches = await client.search(data)
        rows = state.by_remote_ids(m.id for m in matches)
    root = config.source.path
    out = []
    for m in matches:
        row = rows.get(str(m.id))
        out.append(
            {
                "id": m.id,
                "url": m.url,
                "score": m.score,
                "key": row.key if row is not None else None,
                "path": str(root / row.key) if row is not None and root is not None else None,
                "known": row is not None,
                "metadata": m.metadata,
            }
        )
    return out
