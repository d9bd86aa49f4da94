"""``facesync check``: is the config valid, the endpoint reachable, are the credentials accepted?"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from pipeline.commands.runtime import open_client
from pipeline.config import Config
from pipeline.config.profile import profile_path, read_profile
from pipeline.errors import EXIT_FAILED, EXIT_GUARD, AuthError, ConfigError, PipelineError, Retryable
from pipeline.sources import open_source


def check(config: Config) -> dict[str, Any]:
    """One ``facesync check``: reach the endpoint with one cheap call (a one-image listing page).

    Retries are off (``limits.retries`` 0), so an unreachable host fails within
    ``api.connect_timeout`` instead of after the whole retry budget; a throttled answer (code 4) is
    reported at once (``limits.quota_wait`` 0) instead of waited out. Never raises a
    :class:`PipelineError`: the answer is ``ok``, ``endpoint``, ``images`` (on that page),
    ``error`` (one line) and ``exit_code`` (0, 1 unreachable, 2 config, 3 bad credentials, 4 throttled);
    ``profile`` (the service profile in use, or None) and ``note`` (what to know about it, or None).
    """
    config = config.with_limits(retries=0, quota_wait=0.0)
    endpoint = config.api.base_url
    result: dict[str, Any] = {"ok": False, "endpoint": endpoint, "images": None, "error": None}
    result |= {"profile": str(profile_path(config)) if config.service else None, "note": profile_note(config)}
    result |= {"config": str(config.origin) if config.origin else None, "state": str(config.state.path)}
    local = [_check_source(config), _check_state(config)]
    result["checks"] = local
    if failed := next((c for c in local if not c["ok"]), None):
        result["error"], result["exit_code"] = failed["detail"], failed["exit_code"]
        return result
    try:
        result["images"] = asyncio.run(_first_page_size(config))
    except AuthError as exc:
        result["error"] = f"bad credentials for {endpoint}: {_one_line(exc)}"
        result["exit_code"] = exc.exit_code
    except Retryable as exc:
        result["error"] = f"cannot reach {endpoint}: {_one_line(exc)}"
        result["exit_code"] = exc.exit_code
    except PipelineError as exc:
        result["error"] = f"{endpoint}: {_one_line(exc)}"
        result["exit_code"] = exc.exit_code
    else:
        result["ok"] = True
        result["exit_code"] = 0
    return result


def profile_note(config: Config) -> str | None:
    """What ``check`` says of the service profile: none measured yet, or what it rules out."""
    path = profile_path(config)
    if config.service is None:
        elsewhere = ""
        if path.exists():
            with contextlib.suppress(ConfigError):
                elsewhere = f" (the one at {path} is of {read_profile(path).endpoint})"
        return (
            f"no service profile measured for {config.api.base_url} yet{elsewhere}: `facesync probe` "
            "measures page size, delete cap, ids and more in about 20 requests"
        )
    if config.service.list_metadata is False:
        return "this service's listing shows no metadata: reconcile cannot adopt, and --adopt refuses"
    return None


def _outcome(ok: bool, what: str, detail: str, exit_code: int = 0) -> dict[str, Any]:
    return {"what": what, "ok": ok, "detail": detail, "exit_code": exit_code}


def _check_source(config: Config) -> dict[str, Any]:
    """What ``sync`` needs of the source: configured, there, readable and not empty (a failed mount
    looks like an empty folder). Local sources are walked to their first file; an S3 manifest is left
    to the first sync (reading it needs the bucket)."""
    src = config.source
    if src.path is None:
        if src.manifest is None:
            return _outcome(False, "source", "no source: give source.path (a folder) or source.manifest", 2)
        if "://" not in src.manifest and not Path(src.manifest).is_file():
            return _outcome(False, "source", f"source.manifest {src.manifest}: no such file", EXIT_FAILED)
        return _outcome(True, "source", f"source.manifest {src.manifest} (read by the sync, not here)")
    try:
        source = open_source(src, origin=config.origin)
    except PipelineError as exc:
        return _outcome(False, "source", _one_line(exc), exc.exit_code)
    try:
        first = next(iter(source.scan()), None)
    except PipelineError as exc:
        return _outcome(False, "source", _one_line(exc), exc.exit_code)
    finally:
        asyncio.run(source.close())
    if first is not None:
        return _outcome(True, "source", f"source {src.path}: readable, holds files to send")
    synced = _synced_files(config)
    if synced:
        detail = (
            f"source {src.path} holds no file to send while the state holds {synced} synced: a mount that "
            "failed? `facesync sync` would refuse the removals (exit 5)"
        )
        return _outcome(False, "source", detail, EXIT_GUARD)
    return _outcome(True, "source", f"source {src.path}: readable, but holds no file to send yet")


def _check_state(config: Config) -> dict[str, Any]:
    """The state file, or the folder it will be created in, is writable; nothing is created."""
    path = config.state.path
    if path.exists():
        if not path.is_file() or not os.access(path, os.R_OK | os.W_OK):
            return _outcome(False, "state", f"state {path}: not a file this user can read and write", 2)
        return _outcome(True, "state", f"state {path}: present, {_synced_files(config)} file(s) synced")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return _outcome(False, "state", f"state {path}: cannot be created ({folder} is not writable)", 2)
    return _outcome(True, "state", f"state {path}: none yet; the first sync creates it (folder writable)")


def _synced_files(config: Config) -> int:
    """Synced rows of an existing state, read without writing (0 when there is none or it is unreadable)."""
    path = config.state.path
    if not path.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM items WHERE status = 'synced'").fetchone()[0])
    except sqlite3.Error:
        return 0


async def _first_page_size(config: Config) -> int:
    async with open_client(config) as client:
        return len(await client.list_page(0, 1))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
