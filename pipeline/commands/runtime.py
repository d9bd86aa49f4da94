"""Opening what a command needs, in one place: the lock, the state, the source, the client.

``api.base_url: embedded`` starts the emulator in-process on a free loopback port, its data kept
under the state folder, so a new user runs everything without credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from pipeline.api import FaceSearchClient
from pipeline.config import Config


def emulator_dir(config: Config) -> Path:
    """Where the embedded emulator keeps its images: beside the state DB."""
    return config.state.path.parent / "emulator"


@asynccontextmanager
async def service_url(config: Config) -> AsyncIterator[str]:
    """The API base URL for ``config``: the embedded emulator is started first when asked for, playing
    ``emulator.profile`` when the config names one."""
    if not config.api.embedded:
        yield config.api.base_url
        return
    from pipeline.emulator import embedded_emulator

    settings = None
    if config.emulator.profile is not None:
        from pipeline.config.profile import read_profile
        from pipeline.emulator.profile import settings_for
        from pipeline.errors import ConfigError

        try:
            settings = settings_for(read_profile(config.emulator.profile))
        except ValueError as exc:
            raise ConfigError(f"{config.emulator.profile}: the emulator cannot play it: {exc}") from None
    key, secret = config.api.api_key, config.api.api_secret
    async with embedded_emulator(emulator_dir(config), key, secret, settings=settings) as base_url:
        yield base_url


@asynccontextmanager
async def open_client(config: Config) -> AsyncIterator[FaceSearchClient]:
    """The API client for ``config``, with the embedded emulator started first when asked for."""
    async with AsyncExitStack() as stack:
        base_url = await stack.enter_async_context(service_url(config))
        client = FaceSearchClient.from_config(config.api, config.limits, base_url=base_url)
        await stack.enter_async_context(client)
        yield client


@contextlib.contextmanager
def on_interrupt(handler: Callable[[], None]) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM) calls ``handler`` (stop intake, drain); a second one stops at once."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    hits = 0

    def fire() -> None:
        nonlocal hits
        hits += 1
        if hits == 1:
            handler()
        elif task is not None:
            task.cancel()

    with signal_handlers(fire, loop):
        yield


@contextlib.contextmanager
def signal_handlers(
    fire: Callable[[], None], loop: asyncio.AbstractEventLoop | None = None
) -> Iterator[None]:
    """``fire`` on SIGINT and SIGTERM while inside (where the platform and thread allow handlers)."""
    loop = loop or asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, fire)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
