"""Google Takeout's JSON sidecars: which sidecar belongs to which photo, and what it says.

Takeout names a photo's sidecar after it, but not simply: ``IMG_0001.jpg.json`` or
``IMG_0001.jpg.supplemental-metadata.json``, the whole name cut at 46–51 characters (so
``...supplemental-me.json``, ``...jp.json``), the second of two same-named photos ``IMG_0001(1).jpg``
with ``IMG_0001.jpg(1).json``, and an edited copy ``IMG_0001-edited.jpg`` sharing its original's
sidecar. The rules here are immich-go's (``adapters/googlePhotos/matchers.go``, github.com/simulot/
immich-go): four matchers tried from the most common to the least, each over a folder's sidecars in
name order, a photo taking the first that matches. Pure functions of names; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

#: Extensions :func:`match_edited` takes for a media extension inside a sidecar's name.
MEDIA_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"}
    | {".dng", ".cr2", ".nef", ".arw", ".mp4", ".mov", ".m4v", ".avi", ".3gp", ".mkv", ".mpg", ".mts"}
)
#: JSON files of a Takeout folder that describe the album, not a photo.
ALBUM_FILES = frozenset({"metadata.json", "métadonnées.json", "print-subscriptions.json"})
_SUPPLEMENTAL = "supplemental-metadata"
_INDEX = re.compile(r"\((\d+)\)")


def _ext(name: str) -> str:
    """Go's ``path.Ext``: from the last dot on, or empty."""
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


def _stem(name: str) -> str:
    return name[: len(name) - len(_ext(name))]


def file_index(name: str) -> tuple[str, str]:
    """The name without its last ``(N)`` and that ``N`` (empty when there is none):
    ``IMG_0001(1).jpg`` → (``IMG_0001.jpg``, ``1``), ``IMG_0001.jpg(1).json`` → (``IMG_0001.jpg.json``,
    ``1``)."""
    start, end = name.rfind("("), name.rfind(")")
    if start >= 0 and end > start and name[start + 1 : end].isdigit() and name[start + 1 : end].isascii():
        return name[:start] + name[end + 1 :], name[start + 1 : end]
    return name, ""


def match_fast_track(json_name: str, file_name: str) -> bool:
    """``IMG_0001.jpg.json`` for ``IMG_0001.jpg``."""
    return _stem(json_name) == file_name


def _normal_key(json_name: str) -> tuple[str, str]:
    """What :func:`match_normal` compares a sidecar by: its index and its name less a (truncated)
    ``.supplemental-metadata`` and the ``.json``."""
    name, index = file_index(json_name)
    p2 = name.rfind(".")
    if p2 > 1:
        p1 = name.rfind(".", 0, p2)
        if p1 > 1 and _SUPPLEMENTAL.startswith(name[p1 + 1 : p2]):
            name = name[:p1] + name[p2:]
    return _stem(name), index


def _normal_candidates(file_name: str) -> tuple[tuple[str, ...], str]:
    """The names a sidecar may carry for ``file_name`` under :func:`match_normal`, and its index."""
    name, index = file_index(file_name)
    out = [name]
    if len(name.encode("utf-8", "surrogatepass")) > 46:
        if len(name) > 46:  # cut at 46 characters
            out.append(name[:46])
        else:  # a multi-byte name: the extension and one more character dropped
            out.append(_stem(name)[:-1])
    return tuple(out), index


def match_normal(json_name: str, file_name: str) -> bool:
    """The same index, and the sidecar named for the whole file name or for its first 46 characters,
    ``.supplemental-metadata`` cut anywhere or not there: ``IMG_0001.jpg(1).json`` for
    ``IMG_0001(1).jpg``, ``Screenshot_20200301-161151.png.supplemental-me.json``."""
    name, index = _normal_key(json_name)
    candidates, file_idx = _normal_candidates(file_name)
    return index == file_idx and name in candidates


def match_forgotten_duplicate(json_name: str, file_name: str) -> bool:
    """A sidecar whose stem begins the file's, the file at most 9 characters longer:
    ``original_<uuid>_.json`` for ``original_<uuid>_P(1).jpg``."""
    json_stem, file_stem = _stem(json_name), _stem(file_name)
    return file_stem.startswith(json_stem) and len(file_stem) - len(json_stem) < 10


def match_edited(json_name: str, file_name: str, media: Collection[str] = MEDIA_EXTENSIONS) -> bool:
    """An edited copy (``IMG_0001-edited.jpg``, ``-modifié``...) and its original's sidecar: the
    sidecar's base (less ``.supplemental-metadata`` and a media extension) begins the file's stem.
    Never for a numbered file (``DSC_0104(1).JPG`` is not an edit of ``DSC_0104.JPG``)."""
    if file_index(file_name)[1]:
        return False
    base = _stem(json_name)
    p1 = base.rfind(".")
    if p1 > 1 and _SUPPLEMENTAL.startswith(base[p1 + 1 :]):
        base = json_name[:p1]
    ext = _ext(base)
    if ext and ext.lower() in media:
        base = base[: -len(ext)]
        file_name = _stem(file_name)
    return file_name.startswith(base)


def match_sidecars(
    files: Iterable[str], jsons: Iterable[str], media: Collection[str] = MEDIA_EXTENSIONS
) -> dict[str, str]:
    """The sidecar of each file of one folder that has one: ``{file name: json name}``.

    immich-go's ``solvePuzzle``: for each matcher in turn, for each sidecar in name order, every file
    not yet matched that it matches takes it. The first two matchers are dictionary lookups, so a
    folder of thousands of photos costs a pass, not a product; the prefix matchers only see the few
    files left over.
    """
    sidecars = sorted(j for j in jsons if j.lower() not in ALBUM_FILES)
    left = sorted(set(files))
    found: dict[str, str] = {}
    by_name: dict[str, str] = {}
    by_normal: dict[tuple[str, str], str] = {}
    for j in reversed(sidecars):  # reversed: the first in name order wins
        by_name[_stem(j)] = j
        by_normal[_normal_key(j)] = j
    rest: list[str] = []
    for f in left:
        hit = by_name.get(f)
        if hit is not None:
            found[f] = hit
        else:
            rest.append(f)
    still = []
    for f in rest:
        candidates, index = _normal_candidates(f)
        hits = [by_normal[(c, index)] for c in candidates if (c, index) in by_normal]
        if hits:
            found[f] = min(hits)
        else:
            still.append(f)
    for matcher in (match_forgotten_duplicate, match_edited):
        for j in sidecars:
            if not still:
                return found
            taken = [f for f in still if (matcher(j, f, media) if matcher is match_edited else matcher(j, f))]
            for f in taken:
                found[f] = j
            still = [f for f in still if f not in found]
    return found


def match_folder(
    names: list[bytes], sidecars: set[bytes], extensions: tuple[str, ...]
) -> dict[bytes, bytes] | None:
    """The sidecars Google Takeout's naming rules (:func:`match_sidecars`) give the photos of one
    folder that have no ``<file>.json``, as a folder walk sees them (names as bytes, a subdirectory's
    ending in ``/``): ``{photo: sidecar}``.

    None — nothing to look up, the folder is as it always was — unless the folder holds a JSON file
    that no file's ``<file>.json`` accounts for (``.supplemental-metadata.json``, ``IMG.jpg(1).json``,
    a cut name): a folder of plain sidecars costs one set lookup per JSON file, once per folder.
    """
    files = {n for n in names if not n.endswith(b"/")}
    if all(j[:-5] in files or j.lower() in _ALBUM_FILES for j in sidecars):
        return None
    photos = [
        n.decode("utf-8", "surrogateescape")
        for n in files
        if n + b".json" not in sidecars and n.decode("utf-8", "surrogateescape").lower().endswith(extensions)
    ]
    if not photos:
        return None
    jsons = [j.decode("utf-8", "surrogateescape") for j in sidecars]
    found = match_sidecars(photos, jsons)
    return {_bytes(f): _bytes(j) for f, j in found.items()}


def _bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


_ALBUM_FILES = frozenset(name.encode() for name in ALBUM_FILES)


# -- what a sidecar says -----------------------------------------------------------------------------------
def is_takeout(sidecar: Mapping[str, Any]) -> bool:
    """Whether a JSON sidecar is Google Takeout's (it is then read for its fields, not merged as is)."""
    return isinstance(sidecar.get("photoTakenTime"), dict) or "googlePhotosOrigin" in sidecar


def sidecar_fields(sidecar: Mapping[str, Any]) -> dict[str, str]:
    """The photo fields (``{people}``, ``{taken}``, ``{title}``, ``{description}``, ``{keywords}``,
    ``{lat}``, ``{lon}``) a sidecar gives: Takeout's (``title``, ``description``,
    ``photoTakenTime.timestamp``, ``geoData``, ``people[].name``) or a plain one's same-named keys
    (``people`` a list of names, ``taken`` text). Absent, empty or malformed values are left out."""
    out: dict[str, str] = {}
    for name in ("title", "description"):
        value = sidecar.get(name)
        if isinstance(value, str) and value.strip():
            out[name] = value.strip()
    people = sidecar.get("people")
    if isinstance(people, list):
        names = [p.get("name") if isinstance(p, dict) else p for p in people]
        joined = join_names(n for n in names if isinstance(n, str))
        if joined:
            out["people"] = joined
    keywords = sidecar.get("keywords", sidecar.get("tags"))
    if isinstance(keywords, list):
        joined = join_names(k for k in keywords if isinstance(k, str))
        if joined:
            out["keywords"] = joined
    taken = sidecar.get("photoTakenTime")
    if isinstance(taken, dict):
        try:
            when = datetime.fromtimestamp(int(str(taken.get("timestamp"))), tz=UTC)
            out["taken"] = when.isoformat(timespec="seconds")
        except (ValueError, OverflowError, OSError):
            pass
    elif isinstance(sidecar.get("taken"), str) and sidecar["taken"].strip():
        out["taken"] = sidecar["taken"].strip()
    for geo_key in ("geoData", "geoDataExif"):
        geo = sidecar.get(geo_key)
        if isinstance(geo, dict) and "lat" not in out:
            lat, lon = _number(geo.get("latitude")), _number(geo.get("longitude"))
            if lat is not None and lon is not None and (lat, lon) != (0, 0):  # 0, 0: Takeout's "unknown"
                out["lat"], out["lon"] = coordinate(lat), coordinate(lon)
    return out


def join_names(names: Iterable[str]) -> str:
    """Names as a template field shows them: stripped, de-duplicated, sorted, joined by ", "."""
    return ", ".join(sorted({n.strip() for n in names if n.strip()}))


def coordinate(value: float) -> str:
    """A latitude or longitude as text: at most 6 decimals (about 10 cm), no trailing zeros."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
