"""Reading one local file whole for upload, checked to be still the file the scan saw.

A file the page cache holds is read in place, on the event loop: open, fstat, one
``preadv(RWF_NOWAIT)`` (which reads only what is cached, and says ``EAGAIN`` otherwise) and fstat
take ~20 µs for 100 KB, where the hop to a thread the read used to take cost several times that
of the client's one CPU (the pool's submit, the thread's wake-up, the loop's wake-up and callback:
docs/performance.md, "Upload against the light sink, round 2"). A file not cached, or cached only
in part, is read in a thread, as every file was before, so a cold disk never stalls the loop on a
read. Whether the file system answers ``RWF_NOWAIT`` at all is learnt by the first read, made in a
thread: one that does not (``EOPNOTSUPP``; a network file system, say) reads every file there.
The open and the two fstats are done in place too once that is known: the scan has just stat-ed
the file, so its inode is cached.

A file not cached is asked for ahead (:meth:`FileReader.prefetch`, ``POSIX_FADV_WILLNEED``) when the
engine queues it for upload, some 100 files before a worker reads it: the kernel reads it meanwhile, so
the read finds it cached and stays in place. Without that, a cold archive (a migration, or a page cache
that was reclaimed) sent nearly every read to a thread: at 10,000 files 9,752 hops, and 30 % more CPU
than the same run warm (docs/performance.md).

Asking costs an open, the advice and a close (~7 µs a file), for nothing when the cache holds the file
already (a nightly sync of files just written, a second try, an archive read an hour ago). So one file
in :data:`PROBE_EVERY` is left unasked, a probe: once :data:`WARM_PROBES` probes in a row are found
cached, nothing is asked for, until a read finds its file not cached, which starts the asking again
(the files already queued by then, at most the engine's read-ahead, are read in a thread). In a cold
archive a probe costs one read in a thread each :data:`PROBE_EVERY` files.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat

from pipeline.errors import Skipped
from pipeline.sources import CHANGED, EMPTY, NOT_A_FILE, UNREADABLE, VANISHED, SourceItem

#: ``os.RWF_NOWAIT`` where the platform has it (Linux ≥ 4.14); elsewhere every read is in a thread.
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None) if hasattr(os, "preadv") else None
#: The largest buffer kept for in-place reads (a larger file gets one of its own).
_BUFFER_MAX = 1 << 20
#: ``os.POSIX_FADV_WILLNEED`` where the platform has it; elsewhere nothing is read ahead.
_WILLNEED: int | None = getattr(os, "POSIX_FADV_WILLNEED", None) if hasattr(os, "posix_fadvise") else None
#: What a file system without non-blocking reads answers.
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})
#: While asking ahead, one file in this many is not asked for: whether its read finds it cached
#: tells whether the cache holds the archive already.
PROBE_EVERY = 32
#: Probes found cached in a row before nothing more is asked for.
WARM_PROBES = 2
#: Most probes awaiting their read (a probe never read, its file skipped, is forgotten past this).
_PROBES_MAX = 64


class FileReader:
    """Reads whole files for one source, in place when cached (see the module's docstring)."""

    def __init__(self, *, follow_symlinks: bool) -> None:
        self.flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO swapped in cannot hang us
        if not follow_symlinks:
            self.flags |= os.O_NOFOLLOW
        #: Whether this file system answers ``RWF_NOWAIT``: None until the first read says.
        self.nowait: bool | None = None if _NOWAIT is not None else False
        #: Reads done in place and in a thread, and files asked for ahead (for tests and the bench).
        self.in_place = self.in_thread = self.prefetched = 0
        #: Whether files are asked for ahead: False once probes found the cache holding them.
        self.asking = True
        #: Probes (files left unasked) not yet read, files named since the last probe, probes found
        #: cached in a row.
        self._probes: set[bytes] = set()
        self._since_probe = 0
        self._warm = 0
        #: What in-place reads read into (the loop's thread only): one allocation a file, not two.
        self._buffer = bytearray()

    def prefetch(self, path: bytes, size: int) -> None:
        """Ask the kernel to start reading the file into the page cache (it returns at once; nothing
        waits for it). A file that cannot be opened is left for :meth:`read` to report."""
        if _WILLNEED is None or self.nowait is False:  # a file system that cannot read in place
            return
        if not self.asking:
            return
        self._since_probe += 1
        if self._since_probe >= PROBE_EVERY and self.nowait:
            self._since_probe = 0
            if len(self._probes) >= _PROBES_MAX:
                self._probes.clear()
            self._probes.add(path)
            return
        try:
            fd = os.open(path, self.flags)
        except OSError:
            return
        try:
            os.posix_fadvise(fd, 0, size, _WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)
        self.prefetched += 1

    async def read(self, path: bytes, item: SourceItem, max_bytes: int) -> bytes:
        """The file's bytes, or Skipped when it is gone, not a file, changed since the scan or unreadable."""
        if self.nowait:
            probe = path in self._probes
            if probe:
                self._probes.discard(path)
            data = self.read_now(path, item, max_bytes, cached_only=True)
            if data is not None:
                self.in_place += 1
                if probe:
                    self._warm += 1
                    self.asking = self._warm < WARM_PROBES
                return data
            self.asking, self._warm = True, 0  # the cache lacks files: ask for them ahead (again)
        self.in_thread += 1
        data = await asyncio.to_thread(self.read_now, path, item, max_bytes, cached_only=False)
        assert data is not None  # only a cached-only read gives up
        return data

    def read_now(self, path: bytes, item: SourceItem, max_bytes: int, *, cached_only: bool) -> bytes | None:
        """Open, check, read, check again; None when ``cached_only`` and the page cache lacks some of it."""
        try:
            fd = os.open(path, self.flags)
        except FileNotFoundError:
            raise Skipped(VANISHED, "gone since the scan") from None
        except IsADirectoryError:
            raise Skipped(NOT_A_FILE, "a directory") from None
        except OSError as exc:
            raise Skipped(UNREADABLE, str(exc.strerror or exc)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Skipped(NOT_A_FILE, "not a regular file")
            if st.st_size != item.size or st.st_mtime_ns != item.mtime_ns:
                raise Skipped(CHANGED, "size or mtime differs from the scan")
            # One byte more than the scan saw: a file that grew since is told by its length.
            want = min(item.size, max_bytes) + 1
            data = (
                self._cached(fd, want, in_place=cached_only) if cached_only or self.nowait is None else None
            )
            if data is None or len(data) < item.size:
                if cached_only:
                    return None
                data = _read(fd, want, item.size)
            after = os.fstat(fd)
        except OSError as exc:
            raise Skipped(UNREADABLE, str(exc.strerror or exc)) from None
        finally:
            os.close(fd)
        if len(data) != item.size or after.st_size != item.size or after.st_mtime_ns != item.mtime_ns:
            raise Skipped(CHANGED, "changed while being read")
        if not data:
            raise Skipped(EMPTY, "0 bytes")
        return data

    def _cached(self, fd: int, want: int, *, in_place: bool) -> bytes | None:
        """Up to ``want`` bytes from the page cache alone (fewer when only part is cached), or None."""
        assert _NOWAIT is not None
        if not in_place or want > _BUFFER_MAX:  # threads may read at once: each needs its own buffer
            buf = memoryview(bytearray(want))
        else:
            if len(self._buffer) < want:
                self._buffer = bytearray(min(max(want, 2 * len(self._buffer)), _BUFFER_MAX))
            buf = memoryview(self._buffer)[:want]
        try:
            n = os.preadv(fd, (buf,), 0, _NOWAIT)
        except BlockingIOError:
            self.nowait = True
            return None
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            self.nowait = False
            return None
        self.nowait = True
        return bytes(buf[:n])


def _read(fd: int, want: int, size: int) -> bytes:
    """Up to ``want`` bytes by plain reads: one, unless the kernel returns a short one before ``size``."""
    data = os.read(fd, want)
    while len(data) < size and (more := os.read(fd, want - len(data))):
        data += more
    return data
