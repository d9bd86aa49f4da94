"""A fake clock for the emulator (``Emulator(clock=...)``): time moves only when the test moves it."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Reads ``now``; ``advance()`` moves it, and so does each sleep, which returns at once.

    After ``hold()``, sleeps wait for ``wake()`` instead, so a test can act while a call is in its
    ``delay``; ``sleeping`` is set as soon as a sleep begins.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.sleeping = asyncio.Event()
        self._awake: asyncio.Event | None = None

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def hold(self) -> None:
        self._awake = asyncio.Event()

    def wake(self) -> None:
        if self._awake is not None:
            self._awake.set()
            self._awake = None

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.sleeping.set()
        if self._awake is not None:
            await self._awake.wait()
        self.now += seconds
