"""Shared fixtures: one real emulator for the whole session, reset before each test that asks for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from tests.imagefactory import make_jpeg, make_png


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorThread]:
    """One emulator (its own loop, in a daemon thread, on 127.0.0.1) for the whole test session."""
    with EmulatorThread() as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorThread) -> EmulatorThread:
    """The session emulator, reset: no images, empty request log, default settings."""
    emulator_server.reset()
    return emulator_server


@pytest.fixture
def emulator_url(emulator: EmulatorThread) -> str:
    """The reset session emulator's API base URL (``http://127.0.0.1:<port>/api/v2/face_search``)."""
    return emulator.base_url


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """A factory writing distinct valid images under ``tmp_path``: ``make_image("a.jpg", seed=1)``.

    The format follows the suffix (``.png`` → PNG, anything else → JPEG); ``size`` is (w, h).
    """

    def make(name: str, seed: int, size: tuple[int, int] = (64, 64)) -> Path:
        path = tmp_path / name
        if path.suffix.lower() == ".png":
            return make_png(path, seed, size)
        return make_jpeg(path, seed, size)

    return make
