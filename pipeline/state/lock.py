"""The state lock: one run at a time per state database (a second run exits 75).

A lock file beside the DB (``<db>.lock``) is held with ``flock(LOCK_EX | LOCK_NB)`` for the life of the run.
The kernel drops a flock when its holder dies, so a file left behind by a killed run is not *held* and is
simply taken over; its JSON content (pid, host, start time, command) only names holders in messages.
It also keeps, across runs, the *epoch* the last run gave the state (``learned`` ``epoch``): a state
whose epoch is not the lock file's is not the file the last run left — restored from a backup, or
replaced — which the run must know before it uploads (``docs/state.md``).
The file is never unlinked: unlinking a lock file races with a process that has just opened it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pipeline.errors import LockedError, cannot_write


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds (or held) a lock, as written into the lock file."""

    pid: int | None
    host: str
    started: float | None
    command: str
    #: The epoch of the state as the last run on it left it (kept after a clean exit too).
    epoch: str | None = None

    @classmethod
    def parse(cls, text: str) -> LockInfo | None:
        """The holder described by a lock file's text, or None when it is empty or unreadable."""
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        pid, started, epoch = raw.get("pid"), raw.get("started"), raw.get("epoch")
        return cls(
            pid=pid if isinstance(pid, int) else None,
            host=str(raw.get("host", "?")),
            started=float(started) if isinstance(started, int | float) else None,
            command=str(raw.get("command", "")),
            epoch=epoch if isinstance(epoch, str) else None,
        )

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)) if self.started else "?"
        what = f" ({self.command})" if self.command else ""
        return f"pid {self.pid} on {self.host}, started {when}{what}"

    def __str__(self) -> str:
        return self.describe()


def lock_path(db_path: Path) -> Path:
    """The lock file that guards ``db_path``."""
    return db_path.with_name(db_path.name + ".lock")


#: The lock file's text is padded to whole blocks of this many bytes (a holder's JSON is ~150).
_BLOCK = 256


class StateLock:
    """Context manager holding the exclusive lock on a state DB; raises LockedError at once if held."""

    def __init__(self, db_path: Path, command: str = "") -> None:
        self.db_path = Path(db_path)
        self.path = lock_path(self.db_path)
        self.command = command
        #: The holder of a stale lock file this run took over (its process died), for the engine to log.
        self.taken_over_from: LockInfo | None = None
        #: The epoch the last run gave the state (None: no run since facesync kept one).
        self.epoch: str | None = None
        self._info: dict[str, object] = {}
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        """Take the lock without waiting. LockedError names the live holder."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: lock already held by this object")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise cannot_write(f"state {self.db_path}: cannot open its lock file {self.path}", exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = holder.describe() if holder else "another process (not yet identified)"
            raise LockedError(f"state {self.db_path} is locked by {who}; lock file {self.path}") from None
        except BaseException:
            os.close(fd)
            raise
        previous = LockInfo.parse(_read_all(fd))
        self.taken_over_from = previous if previous is not None and previous.pid is not None else None
        self.epoch = previous.epoch if previous is not None else None
        self._info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": self.command,
        }
        try:
            self._write(fd, {**self._info, "epoch": self.epoch})
        except OSError as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise cannot_write(f"state {self.db_path}: cannot write its lock file {self.path}", exc) from None
        self._fd = fd
        return self

    def keep_epoch(self, epoch: str) -> None:
        """Record ``epoch`` as the state's (written into the state already): the next run checks it."""
        assert self._fd is not None
        try:
            self._write(self._fd, {**self._info, "epoch": epoch})
        except OSError as exc:
            raise cannot_write(f"state {self.db_path}: cannot write its lock file {self.path}", exc) from None
        self.epoch = epoch

    @staticmethod
    def _write(fd: int, info: dict[str, object]) -> None:
        """Rewrite the file in place, in one write, at a size that does not change: the JSON padded with
        spaces (JSON's own whitespace) to whole blocks of :data:`_BLOCK` bytes, never truncated. A reader
        then sees the text before or after the write, never an empty file (a truncate, then a write) nor
        a new text cut at the old length (a write that grows the file, seen before the size is), so a
        run refused meanwhile names the holder; and a kill cannot leave it empty (the epoch is kept,
        docs/state.md)."""
        kept = {k: v for k, v in info.items() if v is not None}
        data = json.dumps(kept).encode() if kept else b""
        size = max(os.fstat(fd).st_size, -(-len(data) // _BLOCK) * _BLOCK)
        os.pwrite(fd, data.ljust(size), 0)

    def release(self) -> None:
        """Leave only the epoch in the lock file (a clean exit names no stale holder); drop the flock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self._write(fd, {"epoch": self.epoch})
        except OSError:
            pass  # a full disk at the very end: the holder's pid stays, and names a dead process
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"StateLock({str(self.path)!r}, held={self.held})"


def _holder(fd: int, tries: int = 3, pause: float = 0.01) -> LockInfo | None:
    """Who holds the lock, read from its file: read again (``tries`` times, ``pause`` s apart) while it
    names no pid — a holder that has the flock but has not written its name yet, or a read that met
    the holder's write half-copied (the page cache does not order the two)."""
    for attempt in range(tries):
        holder = LockInfo.parse(_read_all(fd))
        if holder is not None and holder.pid is not None:
            return holder
        if attempt + 1 < tries:
            time.sleep(pause)
    return None


def _read_all(fd: int) -> str:
    """The file's text in one read, so that a holder rewriting it meanwhile is seen before or after its
    write, never half of each (reads in pieces joined the old text's start to the new text's end)."""
    size = os.fstat(fd).st_size
    return os.pread(fd, size + 4096, 0).decode("utf-8", "replace")


__all__ = ["LockInfo", "StateLock", "lock_path"]
