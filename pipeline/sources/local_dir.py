"""One directory of the local walk: its names listed, its sidecars and links noted, and why an entry is
not sent.

:class:`~pipeline.sources.local.LocalSource` holds a :class:`Dir` for each directory on the walk's
current path (and sorts what :func:`list_dir` lists into key order); the reasons here are what a scan
reports for an entry it skips unread.
"""

from __future__ import annotations

import os
import stat


class Dir:
    """One directory on the walk's current path: its sorted names (a subdirectory's ends in ``/``), where
    we are in them, its ``*.json`` files (sidecars), the photos of its Takeout-named ones (``match_folder``),
    its links to directories (not followed: listed as files, reported skipped) and an open descriptor its
    files are stat-ed through."""

    __slots__ = ("entries", "fd", "ident", "links", "matched", "prefix", "sidecars")

    def __init__(
        self,
        prefix: bytes,
        entries: list[bytes],
        sidecars: set[bytes],
        matched: dict[bytes, bytes] | None,
        links: set[bytes],
        fd: int,
        ident: object,
    ) -> None:
        self.prefix = prefix
        self.entries = iter(entries)
        self.sidecars = sidecars
        self.matched = matched
        self.links = links
        self.fd = fd
        self.ident = ident


def list_dir(path: bytes, follow: bool) -> tuple[list[bytes], set[bytes], set[bytes]]:
    """One directory's visible names, in the order listed (a subdirectory's with a ``/`` appended), its
    files named ``*.json`` (sidecars) and, when links are not followed (``follow``), the names of its
    links to directories (listed as files); OSError when it cannot be listed."""
    found: list[bytes] = []
    links: set[bytes] = set()
    add = found.append
    # Two loops, one per setting, so that a file costs one test of its type (the no-op's path: 12 % of
    # this function at a million files, docs/performance.md round 7).
    with os.scandir(path) as it:
        if follow:
            for entry in it:
                name = entry.name
                if name[:1] == b".":
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:  # a link looping on itself: reported by the walk, never followed
                    is_dir = False
                add(name + b"/" if is_dir else name)
        else:
            for entry in it:
                name = entry.name
                if name[:1] == b".":
                    continue
                if entry.is_file(follow_symlinks=False):
                    add(name)
                elif entry.is_symlink():  # not followed: reported (skipped, unread) if it looks like a photo
                    add(name)
                    if is_dir_link(entry):
                        links.add(name)
                else:  # a directory; or a FIFO, socket or device, which the walk reports
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    add(name + b"/" if is_dir else name)
    return found, {name for name in found if name.endswith(b".json")}, links


#: Why a link to a directory is not walked.
LINKED_DIR = "a symlink to a directory, not followed (set source.follow_symlinks: true to follow links)"


def is_dir_link(entry: os.DirEntry[bytes]) -> bool:
    """Whether a link points to a directory (one stat of the target: links are few)."""
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def not_a_file(mode: int) -> str:
    """Why an entry with this mode is not sent."""
    if stat.S_ISLNK(mode):
        return "a symlink, not followed (set source.follow_symlinks: true to follow links)"
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"{kind}, not a regular file"
