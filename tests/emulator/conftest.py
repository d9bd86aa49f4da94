"""The emulator tests' fixtures: a raw API client on the session emulator, or on one of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from pipeline.emulator import Emulator, EmulatorThread

from .apiclient import Api
from .fakeclock import FakeClock


@pytest.fixture
async def api(emulator: EmulatorThread) -> AsyncIterator[Api]:
    """An :class:`Api` on the freshly reset session emulator."""
    async with aiohttp.ClientSession() as session:
        yield Api(session, emulator.base_url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def clocked_emulator(clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator of this test alone, on the test's loop, whose rate window and delays run on ``clock``."""
    emulator = Emulator(clock=clock)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def clocked_api(clocked_emulator: Emulator) -> AsyncIterator[Api]:
    """An :class:`Api` on :func:`clocked_emulator`."""
    async with aiohttp.ClientSession() as session:
        yield Api(session, clocked_emulator.base_url)
