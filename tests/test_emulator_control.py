"""The emulator's control routes answer anyone only on loopback; beyond it, only the API's credentials.

Real servers on real sockets: the emulator in-process on 127.0.0.1, on 0.0.0.0 and on this machine's
own non-loopback address (skipped when it has none), and ``facesync serve --host 0.0.0.0`` as a process.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipeline.emulator import Emulator, EmulatorSettings
from pipeline.emulator.control import loopback_only, resolves_to_loopback
from pipeline.errors import EXIT_USAGE

KEY, SECRET = "team-key", "a-secret-of-the-team"
GOOD = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
WRONG = "Basic " + base64.b64encode(f"{KEY}:demo-secret".encode()).decode()
#: Every control route, as (method, path, body).
ROUTES = [
    ("GET", "/settings", None),
    ("POST", "/settings", {"rate_limit": 3}),
    ("GET", "/images", None),
    ("GET", "/requests", None),
    ("POST", "/seed", {"n": 2}),
    ("POST", "/reset", None),
]


def own_address() -> str | None:
    """This machine's first non-loopback address (``hostname -I``), or None."""
    try:
        found = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return next((a for a in found if ":" not in a and not loopback_only([a])), None)


async def control(session: aiohttp.ClientSession, root: str, method: str, path: str, **kw: Any) -> int:
    async with session.request(method, f"{root}/_emulator{path}", **kw) as resp:
        await resp.read()
        return resp.status


@pytest.fixture
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Emulator, str]]:
    """An emulator listening on ``request.param`` (with the team's credentials); its control root as
    reached over that address (127.0.0.1 for 0.0.0.0)."""
    host: str = request.param
    if host == "own":
        found = own_address()
        if found is None:
            pytest.skip("this machine has no non-loopback address")
        host = found
    emulator = Emulator(tmp_path / "data", EmulatorSettings(api_key=KEY, api_secret=SECRET))
    base = await emulator.start(host, 0)
    reach = base.replace("//0.0.0.0:", "//127.0.0.1:")
    try:
        yield emulator, reach.split("/api/", 1)[0]
    finally:
        await emulator.stop()


@pytest.mark.parametrize("served", ["0.0.0.0", "own"], indirect=True)
async def test_beyond_loopback_every_control_route_needs_the_api_credentials(
    served: tuple[Emulator, str],
) -> None:
    emulator, root = served
    emulator.seed(3)
    assert not emulator.control_open
    async with aiohttp.ClientSession() as session:
        for method, path, body in ROUTES:
            for auth in (None, WRONG):
                headers = {"Authorization": auth} if auth else {}
                assert await control(session, root, method, path, json=body, headers=headers) == 401
        assert len(emulator.images()) == 3 and emulator.settings.rate_limit != 3  # nothing changed
        for method, path, body in ROUTES:
            assert (
                await control(session, root, method, path, json=body, headers={"Authorization": GOOD}) == 200
            )
    assert emulator.images() == []  # the last one was a reset


@pytest.mark.parametrize("served", ["127.0.0.1"], indirect=True)
async def test_on_loopback_the_control_routes_answer_without_credentials(
    served: tuple[Emulator, str],
) -> None:
    emulator, root = served
    assert emulator.control_open
    async with aiohttp.ClientSession() as session:
        for method, path, body in ROUTES:
            assert await control(session, root, method, path, json=body) == 200


def test_which_addresses_count_as_loopback() -> None:
    assert loopback_only(["127.0.0.1", "::1", "127.8.9.10"])
    assert not loopback_only(["127.0.0.1", "0.0.0.0"])
    assert not loopback_only(["::"]) and not loopback_only(["192.0.2.2"]) and not loopback_only([])
    assert not loopback_only(["localhost"])  # a name is not an address: resolve it first
    assert resolves_to_loopback("localhost") is True
    assert resolves_to_loopback("0.0.0.0") is False
    assert resolves_to_loopback("no-such-host.invalid") is None


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[str]:
    """``facesync serve --host 0.0.0.0 --port 0`` with the team's credentials; its control root."""
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--host", "0.0.0.0", "--port", "0",
         "--data", str(tmp_path / "serve"), "--api-key", KEY, "--api-secret", SECRET],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stderr.readline() if server.stderr else ""
        assert "serving " in line, line
        base = line.split("serving ", 1)[1].split(" ", 1)[0]
        yield base.split("/api/", 1)[0].replace("//0.0.0.0:", "//127.0.0.1:")
    finally:
        server.kill()
        server.wait(10)
        if server.stderr:
            server.stderr.close()


def test_serve_on_every_address_refuses_control_without_credentials_and_accepts_them(
    serve_process: str,
) -> None:
    url = f"{serve_process}/_emulator/settings"
    for auth in (None, WRONG):
        request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"].startswith("Basic ")
        refused.value.close()
    request = urllib.request.Request(url, headers={"Authorization": GOOD})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.load(answer)["api_key"] == KEY


def test_serve_beyond_loopback_with_the_default_secret_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "--host", "0.0.0.0", "--port", "0",
         "--data", str(tmp_path / "serve")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith("facesync: error: --host 0.0.0.0 is not a loopback address")
    assert not (tmp_path / "serve").exists()


def test_serve_help_says_where_the_control_routes_answer(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "--help"], capture_output=True, text=True, timeout=30
    )
    text = " ".join(result.stdout.split())
    assert "On a loopback --host (the default) they answer anyone" in text
    assert "only requests with the API's credentials" in text
