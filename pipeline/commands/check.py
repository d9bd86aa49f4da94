"""``facesync check``: is the config valid, the endpoint reachable, are the credentials accepted?"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pipeline.commands.runtime import open_client
from pipeline.config import Config
from pipeline.config.profile import profile_path, read_profile
from pipeline.errors import AuthError, ConfigError, PipelineError, Retryable


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


async def _first_page_size(config: Config) -> int:
    async with open_client(config) as client:
        return len(await client.list_page(0, 1))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
