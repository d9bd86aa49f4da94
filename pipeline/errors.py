"""Errors, classed by what happens next (not by where they came from).

::

    PipelineError                 root; ``exit_code`` is what the CLI exits with if it reaches the top
    ├── Fatal                     stop the run now
    │   ├── ConfigError           unreadable or invalid config, bad usage          (exit 2)
    │   ├── StateError            state DB corrupt, foreign, or unusable           (exit 2)
    │   ├── AuthError             code 5, HTTP 401/403                             (exit 3)
    │   ├── ScanError             the source could not be listed                   (exit 1)
    │   └── LockedError           another run holds the state lock                 (exit 75)
    ├── QuotaSpent                throttling outlasted ``limits.quota_wait``: stop intake,
    │   │                         drain, record, resumable                        (exit 4)
    │   ├── BudgetSpent           ``limits.max_requests`` / ``requests_per_day`` spent: the same
    │   │                         stop, of our own making                          (exit 4)
    │   └── DeadlineReached       ``--max-duration`` / ``--until`` / ``limits.max_duration``
    │                             came: the same stop, resumable                   (exit 7)
    ├── GuardRefused              the max-delete / max-missing guard refused       (exit 5)
    ├── ForeignCollection         first upload into a collection the state does not know (exit 6)
    ├── Throttled                 code 4, HTTP 429: close the gate, back off, retry
    ├── Retryable                 connection error, timeout, HTTP 5xx, non-JSON: retry with back-off
    │   └── ServiceFailing        the circuit breaker is open: stop sending, end the run, rerun later
    ├── Rejected                  the service refused this image for good (codes 1, 2, 3, 6, HTTP 413)
    └── Skipped                   the pipeline refused the file itself; no request spent

aiohttp's exceptions are translated into this tree in exactly one place (``pipeline.api.client``);
nothing above the client imports them.
"""

from __future__ import annotations

import os
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_QUOTA = 4
EXIT_GUARD = 5
EXIT_FOREIGN = 6
EXIT_DEADLINE = 7
EXIT_LOCKED = 75


class PipelineError(Exception):
    """Root of every error the pipeline raises on purpose."""

    exit_code: int = EXIT_FAILED
    #: Set by the client on the error a call ends with when an earlier attempt of the same call was
    #: sent and its answer lost: an add that ends refused (or throttled away) may still have been stored.
    lost_attempt: bool = False


class Fatal(PipelineError):
    """Stop the run now; nothing more is sent."""


class ConfigError(Fatal):
    """The config file is missing, unreadable or invalid; or the command line is wrong."""

    exit_code = EXIT_USAGE


class StateError(Fatal):
    """The state database is corrupt, foreign, from a newer version, or cannot be opened."""

    exit_code = EXIT_USAGE


#: What to do when a write fails for want of room or of write access (errno → advice).
_WRITE_ADVICE = {
    28: "the disk is full: free some space, then run again (nothing was lost)",
    30: "the file system is read-only: remount it read-write, or point state.path elsewhere",
    122: "the disk quota is spent: free some space, then run again (nothing was lost)",
}


def cannot_write(what: str, exc: OSError) -> StateError:
    """One clear line for a state file that cannot be written: what, why, and what to do."""
    why = exc.strerror or str(exc)
    advice = _WRITE_ADVICE.get(exc.errno or 0)
    return StateError(f"{what}: {why}" + (f"; {advice}" if advice else ""))


def sqlite_advice(exc: Exception, where: Path | None = None) -> str:
    """The advice for an SQLite error that is really the disk (full, read-only), or ''. A bare "disk I/O
    error" (SQLite could not create or map its ``-shm`` file) is the disk's when ``where``'s file system
    has no room left."""
    text = str(exc).lower()
    if "disk is full" in text or "no space" in text:
        return "; " + _WRITE_ADVICE[28]
    if "readonly" in text or "read-only" in text:
        return "; " + _WRITE_ADVICE[30]
    if "disk i/o error" in text and where is not None:
        try:
            room = os.statvfs(where.parent)
        except OSError:
            return ""
        if room.f_bavail == 0:
            return "; " + _WRITE_ADVICE[28]
        if room.f_flag & os.ST_RDONLY:
            return "; " + _WRITE_ADVICE[30]
    return ""


class AuthError(Fatal):
    """The service rejected the credentials (status_code 5, HTTP 401/403)."""

    exit_code = EXIT_AUTH


class ScanError(Fatal):
    """The source could not be listed completely: it must never look like an empty archive."""

    exit_code = EXIT_FAILED


class LockedError(Fatal):
    """Another run holds the lock on this state database."""

    exit_code = EXIT_LOCKED


class QuotaSpent(PipelineError):
    """Throttling lasted longer than ``limits.quota_wait``: the quota is spent for now. Resumable."""

    exit_code = EXIT_QUOTA


class BudgetSpent(QuotaSpent):
    """The run's request budget (``limits.max_requests``, or what ``limits.requests_per_day`` leaves of
    the last 24 hours) is spent: stopped as a spent quota is (exit 4), resumable when it refills."""


class DeadlineReached(QuotaSpent):
    """The run's deadline came (``--max-duration``, ``--until``, ``limits.max_duration``): nothing new is
    started, what is in flight is recorded, and the next run resumes. Exit 7, which cron can tell from a
    failure."""

    exit_code = EXIT_DEADLINE


class GuardRefused(PipelineError):
    """A safety guard (max-delete, max-missing) refused the whole operation; nothing was deleted."""

    exit_code = EXIT_GUARD


class ForeignCollection(PipelineError):
    """The state has never sent an image, and the collection holds some: uploading now could store every
    file a second time (a lost state, a new host, other shards). Nothing was sent."""

    exit_code = EXIT_FOREIGN


class Throttled(PipelineError):
    """The service asked us to slow down (status_code 4, HTTP 429). Close the gate and back off."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Retryable(PipelineError):
    """A transient failure: retry this request with back-off.

    ``sent`` is True when the request may have reached the service (a 5xx, a timeout or a reset after
    the body was sent): for an add, the image may have been stored, so the row stays ``uploading``
    and reconcile settles it.
    """

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class Rejected(PipelineError):
    """The service refused this image for good. Not retried until the file changes."""

    def __init__(self, message: str, *, code: int | None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class Skipped(PipelineError):
    """The pipeline refused the file itself (too big, unreadable, vanished, not an image)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ServiceFailing(Retryable):
    """The service is failing (an outage): calls keep ending in failure after all their retries.

    Raised by the circuit breaker instead of another attempt; the run stops sending, records what is
    in flight and ends (exit 1), resumable. ``sent`` says whether an earlier attempt of this call may
    have reached the service.
    """
