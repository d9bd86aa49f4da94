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
async def open_client(config: Config) -> AsyncIterator[FaceSearchClient]:
    """The API client for ``config``, with the embedded emulator started first when asked for."""
    async with AsyncExitStack() as stack:
        base_url = config.api.base_url
        if config.api.embedded:
            from pipeline.emulator import embedded_emulator

            base_url = await stack.enter_async_context(
                embedded_emulator(emulator_dir(config), config.api.api_key, config.api.api_secret)
            )
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
