"""The emulator tests' fixture: a raw API client on the freshly reset session emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from pipeline.emulator import EmulatorThread

from .apiclient import Api


@pytest.fixture
async def api(emulator: EmulatorThread) -> AsyncIterator[Api]:
    """An :class:`Api` on the freshly reset session emulator."""
    async with aiohttp.ClientSession() as session:
        yield Api(session, emulator.base_url)
