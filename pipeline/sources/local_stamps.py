"""What the state keeps of a local file, beside its size and mtime, to notice a change without reading it:
the file's change stamp (ctime, inode) and its sidecar's stamp.

Computed from a stat alone (the walk's own, or one ``stat`` of a sidecar through its directory's open
descriptor), so a nightly no-op reads no file.
"""

from __future__ import annotations

import os
import stat


def sidecar_stamp(name: bytes, dir_fd: int, follow: bool) -> str | None:
    """A sidecar's "size-mtime_ns", or None when it is not a file (or it vanished)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=follow)
    except OSError:
        return None
    return f"{st.st_size}-{st.st_mtime_ns}" if stat.S_ISREG(st.st_mode) else None


def named_sidecar_stamp(name: bytes, dir_fd: int, follow: bool) -> str | None:
    """The stamp of a sidecar not named ``<file>.json``: its "size-mtime_ns" and its name, which
    :meth:`~pipeline.sources.local.LocalSource.read_sidecar` reads (a ``<file>.json`` stamp stays as it
    was: no PUT after an upgrade)."""
    stamp = sidecar_stamp(name, dir_fd, follow)
    return f"{stamp}:{name.decode('utf-8', 'surrogateescape')}" if stamp is not None else None


def change_stamp(st: os.stat_result, mode: int = 3) -> str | None:
    """What a file's row keeps, beside its size and mtime, to notice a rewrite that put them back
    (``exiftool -P``, ``rsync --inplace -t``): ``ctime:inode`` (``mode`` 3), or one of them (1: ctime,
    2: inode — with the mtime, so that a new mtime always reads the file), or None (0: size and mtime
    alone). Carried in the item's ``etag`` slot; unlike an S3 ETag it proves nothing of the content:
    a different stamp means "read and hash it", and an unchanged hash then only refreshes the row."""
    if mode == 3:
        return f"{st.st_ctime_ns}:{st.st_ino}"
    if mode == 1:
        return f"{st.st_ctime_ns}:"
    if mode == 2:
        return f":{st.st_ino}:{st.st_mtime_ns}"
    return None
