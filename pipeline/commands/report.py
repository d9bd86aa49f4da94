"""``facesync report --html`` and ``search --html``: gather what a page shows, thumbnail it, write it.

Read-only: the state is opened with ``create=False`` (a missing one is exit 2, nothing made) and never
locked, so a report can be written while a sync runs; its rows are read in one streaming pass, one
snapshot. The refused, skipped and failed files share a budget of thumbnails (``--max-thumbnails``):
each kind gets an equal share or all it has, whichever is less, and what a small kind leaves goes to
the others; the page counts what it left out.
"""

from __future__ import annotations

import time
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.config import Config
from pipeline.errors import ConfigError, ScanError
from pipeline.keys import safe_key
from pipeline.output import html
from pipeline.output.pages import ArchiveReport, Card, Gallery, SearchReport, report_page, search_page
from pipeline.output.thumbs import (
    GRID_PX,
    LARGE_PX,
    MAX_PREVIEW_BYTES,
    NO_LOCAL_FILE,
    Thumb,
    placeholder,
    thumbnail_data,
    thumbnails,
)
from pipeline.sources.zipped import ZipSource, is_archive_path
from pipeline.state import Row, State, Status

#: The folder table shows the largest folders; an archive may have thousands at its top level.
MAX_FOLDERS = 100
#: The galleries, in page order: the status and its heading.
GALLERIES = (
    (Status.REJECTED, "Refused by the service"),
    (Status.SKIPPED, "Skipped locally"),
    (Status.FAILED, "Failed after retries"),
)
#: Metadata facesync adds for crash safety: meaningless to a person looking at a match.
HIDDEN_METADATA = frozenset({"facesync_token"})


@dataclass(frozen=True)
class Written:
    """What a page holds, for the line the command prints."""

    path: Path
    size: int
    thumbnails: int
    left_out: int = 0

    def describe(self) -> str:
        """``PATH (1.2 MB, 1,000 thumbnails, 9,000 more counted)``."""
        more = f", {self.left_out:,} more counted" if self.left_out else ""
        return f"{self.path} ({human_size(self.size)}, {self.thumbnails:,} thumbnails{more})"


def fair_shares(sizes: Sequence[int], budget: int) -> list[int]:
    """Split ``budget`` over groups of these ``sizes``: each gets its size or an equal share of what is
    left, whichever is less, smallest groups first, so no budget is wasted while a group wants more."""
    shares = [0] * len(sizes)
    left = max(0, budget)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for n, i in enumerate(order):
        shares[i] = min(max(0, sizes[i]), left // (len(sizes) - n))
        left -= shares[i]
    return shares


def top_folder(key: str) -> str:
    """The top-level folder of a key ("" for a file at the top)."""
    return key.split("/", 1)[0] if "/" in key else ""


def write_report(config: Config, path: Path, *, runs: int, max_thumbnails: int) -> Written:
    """Write the archive report of ``config``'s state to ``path`` (atomically): the last ``runs`` runs,
    at most ``max_thumbnails`` pictures."""
    wanted = {status for status, _ in GALLERIES}
    by_folder: dict[str, Counter[str]] = {}
    kept: dict[Status, list[Row]] = {status: [] for status in wanted}
    with State.open(config.state.path, create=False) as state:
        history = state.last_runs(runs) if runs else None
        for row in state.iter_rows():  # one pass, one snapshot: counts, folders and gallery rows agree
            by_folder.setdefault(top_folder(row.key), Counter())[row.status.value] += 1
            if row.status in wanted and len(kept[row.status]) < max_thumbnails:
                kept[row.status].append(row)
    counts = dict.fromkeys((s.value for s in Status), 0)
    for folder_counts in by_folder.values():
        for name, n in folder_counts.items():
            counts[name] += n
    totals = [counts[status.value] for status, _ in GALLERIES]
    shares = fair_shares(totals, max_thumbnails)
    picked = [kept[status][:share] for (status, _), share in zip(GALLERIES, shares, strict=True)]
    rows = [row for group in picked for row in group]
    thumbs = iter(previews(config, [r.key for r in rows]))
    galleries = [
        Gallery(status.value, heading, total, [_row_card(row, next(thumbs)) for row in group])
        for (status, heading), total, group in zip(GALLERIES, totals, picked, strict=True)
    ]
    largest = sorted(by_folder.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    report = ArchiveReport(
        state=str(config.state.path),
        source=str(config.source.path or config.source.manifest or ""),
        api=config.api.base_url,
        generated_at=time.time(),
        counts=counts,
        folders=largest[:MAX_FOLDERS],
        folders_left_out=max(0, len(largest) - MAX_FOLDERS),
        runs=history,
        galleries=galleries,
    )
    size = _write(path, report_page(report))
    return Written(path, size, len(rows), sum(totals) - len(rows))


def write_search_page(
    config: Config, image: Path, matches: Sequence[Mapping[str, Any]], path: Path
) -> Written:
    """Write a search's page: the query photo and each match (``commands.search`` values) as a picture
    from the local archive, or a placeholder when it is not in the state or has no local copy."""
    (query,) = thumbnails([image], LARGE_PX, follow_symlinks=True)  # the user named this file
    keys = [str(m["key"]) for m in matches if m.get("known") and m.get("key")]
    found = iter(previews(config, keys, LARGE_PX))
    cards = []
    for match in matches:
        if match.get("known") and match.get("key"):
            thumb = next(found)
        else:
            thumb = placeholder("not from this archive", LARGE_PX)
        cards.append(_match_card(match, thumb))
    report = SearchReport(
        image=str(image),
        api=config.api.base_url,
        generated_at=time.time(),
        query=Card(query, str(image)),
        matches=cards,
    )
    return Written(path, _write(path, search_page(report)), len(cards) + 1)


def local_paths(config: Config) -> Callable[[str], Path | None]:
    """Where a key's file is on this machine: under ``source.path``; None for an S3 source."""
    if config.source.path is None:
        return lambda key: None
    from pipeline.sources.local import LocalSource

    return LocalSource(config.source).local_path


def previews(config: Config, keys: Sequence[str], box: int = GRID_PX) -> list[Thumb]:
    """A thumbnail for each key, in order: of its file under ``source.path``, or of its member read
    from the zip that holds it (found by one scan of the archives' directories; a folder with
    ``source.archives`` is walked too, for the files beside the zips); a placeholder for an S3 source."""
    follow = config.source.follow_symlinks
    root = config.source.path
    if root is None or not (config.source.archives or is_archive_path(root)):
        local = local_paths(config)
        return thumbnails([local(key) for key in keys], box, follow_symlinks=follow)
    zips = ZipSource(config.source)
    try:
        for _ in zips.scan_raw():  # a member a file beside the zip hides is the file's
            pass
    except ScanError:
        return [placeholder(NO_LOCAL_FILE, box) for _ in keys]
    members = [zips.where(key) for key in keys]
    zips.close_archives()
    local = local_paths(config) if config.source.archives else lambda key: None
    files = [local(key) for key, member in zip(keys, members, strict=True) if member is None]
    pictures = iter(thumbnails(files, box, follow_symlinks=follow))
    read = read_members([m for m in members if m is not None])
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # as thumbnails() does
        for member in members:
            if member is None:
                out.append(next(pictures))
                continue
            data = read[member]
            out.append(placeholder(data, box) if isinstance(data, str) else thumbnail_data(data, box))
    return out


def read_members(members: Sequence[tuple[Path, str]]) -> dict[tuple[Path, str], bytes | str]:
    """Each zip member's bytes (at most :data:`MAX_PREVIEW_BYTES`), each archive opened once; or why
    not, in words for the page."""
    out: dict[tuple[Path, str], bytes | str] = {}
    by_archive: dict[Path, list[str]] = {}
    for archive, name in members:
        by_archive.setdefault(archive, []).append(name)
    for archive, names in by_archive.items():
        try:
            with zipfile.ZipFile(archive) as zf:
                for name in names:
                    out[(archive, name)] = _member(zf, name)
        except (OSError, zipfile.BadZipFile, zlib.error, ValueError, EOFError) as exc:
            for name in names:
                out[(archive, name)] = f"its archive is unreadable: {exc}"
    return out


def _member(zf: zipfile.ZipFile, name: str) -> bytes | str:
    try:
        info = zf.getinfo(name)
        if info.file_size > MAX_PREVIEW_BYTES:
            return "too large to preview"
        with zf.open(info) as f:
            return f.read(MAX_PREVIEW_BYTES + 1)
    except KeyError:
        return "gone from its archive"
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError, NotImplementedError):
        return "a damaged member of its archive"


def _row_card(row: Row, thumb: Thumb) -> Card:
    reason = row.message or ""
    if row.code is not None:
        reason = f"[{row.code}] {reason}".rstrip()
    fields = (("reason", reason or "-"), ("size", human_size(row.size)), ("since", html.when(row.updated_at)))
    return Card(thumb, safe_key(row.key), fields, row.status.value)


def _match_card(match: Mapping[str, Any], thumb: Thumb) -> Card:
    score = match.get("score")
    fields = [
        ("score", f"{score:.2f}" if isinstance(score, int | float) else "-"),
        ("remote id", str(match.get("id"))),
    ]
    if match.get("known"):
        fields.append(("path", str(match.get("path") or match.get("key"))))
    metadata = match.get("metadata")
    names = match.get("people")
    if names:
        fields.append(("people", str(names)))  # who is in it: first, whatever else the metadata holds
    if match.get("url"):
        fields.append(("url", str(match["url"])))
    if isinstance(metadata, Mapping):
        shown = HIDDEN_METADATA | ({"people"} if names else set())
        fields += [(str(k), _value(v)) for k, v in sorted(metadata.items()) if k not in shown]
    title = str(match["key"]) if match.get("known") and match.get("key") else "(not from this archive)"
    return Card(thumb, title, tuple(fields), "synced" if match.get("known") else None)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def human_size(n: int) -> str:
    """Bytes for people: ``812 bytes``, ``48.2 KB``, ``3.1 MB`` (powers of 1,000)."""
    if n < 1000:
        return f"{n:,} bytes"
    return f"{n / 1000:,.1f} KB" if n < 1_000_000 else f"{n / 1_000_000:,.1f} MB"


def _write(path: Path, chunks: Iterable[str]) -> int:
    try:
        return html.write(path, chunks)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
