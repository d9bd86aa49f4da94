"""The state lock: real flocks, with rival holders in real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import EXIT_LOCKED, LockedError
from pipeline.state.lock import LockInfo, StateLock, lock_path

HOLDER = """
import sys, time
from pathlib import Path
from pipeline.state.lock import StateLock
lock = StateLock(Path(sys.argv[1]), command="sync --rival").acquire()
print("held", flush=True)
time.sleep(60)
"""


#: A holder that rewrites its lock file without end, as a run does once when it records its epoch: the
#: text longer and shorter in turn.
REWRITER = HOLDER.replace(
    "time.sleep(60)",
    """n = 0
while True:
    n += 1
    lock.keep_epoch("e" * (1 + n % 40))""",
)


def start_holder(db: Path, script: str = HOLDER) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_lock_file_sits_beside_the_db_and_names_its_holder(tmp_path: Path) -> None:
    db = tmp_path / "state" / "s.db"
    with StateLock(db, command="sync") as lock:
        assert lock.path == tmp_path / "state" / "s.db.lock" == lock_path(db)
        info = json.loads(lock.path.read_text())
        assert (info["pid"], info["host"], info["command"]) == (os.getpid(), socket.gethostname(), "sync")
        assert lock.taken_over_from is None
    assert lock.path.read_text().strip() == ""  # padded with spaces: the size never changes
    assert lock.held is False


def test_a_live_holder_makes_a_second_run_fail_at_once(tmp_path: Path) -> None:
    """Refused at once, told by order rather than the clock: while the holder still holds the lock.

    The holder sleeps 60 s; a lock that waited for it would get it then, instead of refusing.
    """
    db = tmp_path / "s.db"
    proc = start_holder(db)
    try:
        with pytest.raises(LockedError) as caught, StateLock(db, command="sync"):
            pass
        assert proc.poll() is None, "the holder is gone: the refusal came after it let go"
        holder = LockInfo.parse(lock_path(db).read_text())
        assert holder is not None and holder.pid == proc.pid
        message = str(caught.value)
        assert f"pid {proc.pid} on {socket.gethostname()}" in message
        assert "(sync --rival)" in message
        assert caught.value.exit_code == EXIT_LOCKED == 75
    finally:
        stop(proc)


def test_a_killed_holders_lock_is_taken_over_and_reported(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    proc = start_holder(db)
    os.kill(proc.pid, signal.SIGKILL)
    stop(proc)
    with StateLock(db, command="sync") as lock:
        stale = lock.taken_over_from
        assert stale is not None
        assert (stale.pid, stale.host, stale.command) == (proc.pid, socket.gethostname(), "sync --rival")
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
        assert str(stale).startswith(f"pid {proc.pid} on {socket.gethostname()}, started ")


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with StateLock(db), pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        StateLock(db).acquire()


def test_released_lock_can_be_taken_again_without_a_takeover_note(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with StateLock(db):
        pass
    with StateLock(db) as again:
        assert again.taken_over_from is None


def test_garbage_in_a_lock_file_is_no_holder() -> None:
    assert LockInfo.parse("not json") is None
    assert LockInfo.parse("[1, 2]") is None
    assert LockInfo.parse('{"pid": 5, "host": "h", "started": 1.5, "command": "c"}') == LockInfo(
        5, "h", 1.5, "c"
    )


def test_a_holder_rewriting_its_lock_file_is_named_by_every_refusal(tmp_path: Path) -> None:
    """A rewrite of the lock file (a run recording its epoch) leaves no moment where it is empty or
    half-written: a second run refused then still names the holder, and a kill then loses no epoch."""
    db = tmp_path / "s.db"
    proc = start_holder(db, REWRITER)
    try:
        tries, unnamed = 0, 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with pytest.raises(LockedError) as refused:
                StateLock(db).acquire()
            tries += 1
            unnamed += f"pid {proc.pid}" not in str(refused.value)
        assert unnamed == 0, f"{unnamed} of {tries} refusals did not name the holder"
    finally:
        stop(proc)
    left = LockInfo.parse(lock_path(db).read_text())
    assert left is not None and left.pid == proc.pid and left.epoch  # killed mid-loop: still whole
