"""Ways to run the emulator: in-process on the running loop, in a daemon thread, or standalone.

The embedded default and async tests share the caller's loop (:func:`embedded_emulator`); sync
tests and subprocess-driven tests need a server that lives on its own loop (:class:`EmulatorThread`);
``facesync serve`` runs :func:`serve_forever` until cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pipeline.emulator.protocol import RequestRecord
from pipeline.emulator.server import Emulator
from pipeline.emulator.settings import DEFAULT_API_KEY, DEFAULT_API_SECRET, EmulatorSettings
from pipeline.emulator.store import ImageId, SeedMetadata, StoredImage

T = TypeVar("T")


@asynccontextmanager
async def embedded_emulator(
    data_dir: Path | None = None,
    api_key: str = DEFAULT_API_KEY,
    api_secret: str = DEFAULT_API_SECRET,
    *,
    settings: EmulatorSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[str]:
    """Run an emulator on the running loop, on a free loopback port; yield its API base URL."""
    chosen = settings.copy() if settings is not None else EmulatorSettings()
    chosen.api_key, chosen.api_secret = api_key, api_secret
    emulator = Emulator(data_dir, chosen)
    try:
        yield await emulator.start(host, port)
    finally:
        await emulator.stop()


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8080,
    data_dir: Path | None = None,
    settings: EmulatorSettings | None = None,
    *,
    ready: Callable[[str], None] | None = None,
    access: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled (Ctrl-C under ``asyncio.run``); ``ready`` gets the base URL once bound,
    ``access`` one line per request (``facesync serve --log``)."""
    emulator = Emulator(data_dir, settings, access=access)
    try:
        base_url = await emulator.start(host, port)
        if ready is not None:
            ready(base_url)
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


class EmulatorThread:
    """An emulator on its own event loop in a daemon thread; its methods are safe from any thread."""

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._settings = settings
        self._data_dir = data_dir
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._emulator: Emulator | None = None
        self.base_url = ""

    @property
    def emulator(self) -> Emulator:
        """The emulator itself; touch it only from its loop (or use this object's methods)."""
        if self._emulator is None:
            raise RuntimeError("the emulator thread is not running")
        return self._emulator

    def start(self) -> str:
        """Start the thread and the server; return the API base URL."""
        if self._thread is not None:
            raise RuntimeError("the emulator thread is already running")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="facesync-emulator", daemon=True)
        self._thread.start()

        async def boot() -> str:
            self._emulator = Emulator(self._data_dir, self._settings)
            return await self._emulator.start(self._host, self._port)

        self.base_url = self._run(boot())
        return self.base_url

    def stop(self) -> None:
        """Stop the server, then the loop and the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if self._emulator is not None:
                self._run(self._emulator.stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = self._emulator = None

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the emulator thread is not running")
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def call(self, fn: Callable[[Emulator], T]) -> T:
        """Run ``fn(emulator)`` on the emulator's loop and return its result."""

        async def run() -> T:
            return fn(self.emulator)

        return self._run(run())

    @property
    def settings(self) -> EmulatorSettings:
        """A snapshot of the live settings."""
        return self.call(lambda e: e.settings.copy())

    def configure(self, **changes: Any) -> EmulatorSettings:
        """Validate and apply setting changes on the emulator's loop; return a snapshot."""
        return self.call(lambda e: e.configure(**changes).copy())

    def reset(self) -> None:
        self.call(lambda e: e.reset())

    def images(self) -> list[StoredImage]:
        return self.call(lambda e: e.images())

    def requests(self) -> list[RequestRecord]:
        return self.call(lambda e: e.requests)

    def seed(self, n: int, metadata: SeedMetadata = None) -> list[ImageId]:
        return self.call(lambda e: e.seed(n, metadata))
