"""Shared fixtures: one real emulator for the whole session, reset before each test that asks for it."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

try:  # where pytest's faulthandler keeps the stderr it does not capture (private: may move)
    from _pytest.faulthandler import fault_handler_stderr_fd_key
except ImportError:  # pragma: no cover
    fault_handler_stderr_fd_key = None

from pipeline.emulator import EmulatorThread
from tests.imagefactory import make_jpeg, make_png

#: A test still running after this long has its asyncio tasks' stacks printed (faulthandler, set to
#: 120 s in pyproject.toml, then prints the threads'): a hang shows what it awaits.
HANG_DUMP_AFTER = 100.0


def _dump_tasks(name: str, fd: int) -> None:
    """Every pending task's stack, to ``fd``: the stderr pytest does not capture (faulthandler's)."""
    out = io.StringIO()
    print(f"\n--- {name} still running after {HANG_DUMP_AFTER:.0f} s; its asyncio tasks:", file=out)
    for task in list(asyncio.tasks._all_tasks):  # type: ignore[attr-defined]  # every loop's, for a dump
        if not task.done():
            print(f"task {task.get_name()}:", file=out)
            for where in _awaiting(task.get_coro()):
                print(f"    {where}", file=out)
    os.write(fd, out.getvalue().encode(errors="replace"))


def _awaiting(coro: object) -> list[str]:
    """Where a suspended coroutine waits, outermost first: each awaited coroutine's file, line and code
    (``Task.print_stack`` shows only the outermost frame, which says nothing of a hang)."""
    chain = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    fd = item.config.stash.get(fault_handler_stderr_fd_key, None) if fault_handler_stderr_fd_key else None
    timer = threading.Timer(HANG_DUMP_AFTER, _dump_tasks, (item.nodeid, 2 if fd is None else fd))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


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
