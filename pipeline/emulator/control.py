"""The emulator's control routes (no faults, not logged): what tests and benches steer it by.

``/_emulator/settings`` (GET, POST changes), ``/_emulator/images``, ``/_emulator/requests``,
``/_emulator/reset`` and ``/_emulator/seed`` mirror the Python-side methods of :class:`Emulator`,
for a standalone ``facesync serve`` driven from another process.

They can wipe and reconfigure the emulator, so they answer anyone only while it listens on loopback
alone (every test, bench and ``make demo``); listening on any other address, they answer only a
request carrying the API's own credentials (HTTP Basic, the live ``api_key``/``api_secret``), and
401 to every other (docs/emulator.md).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from pipeline.emulator import protocol as p
from pipeline.emulator.request_pipeline import authorized

if TYPE_CHECKING:
    from pipeline.emulator.server import Emulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def loopback_only(hosts: Iterable[str]) -> bool:
    """Whether every address listened on is a loopback one (``127.0.0.0/8``, ``::1``); a name, or an
    address for every interface (``0.0.0.0``, ``::``), is not."""
    found = False
    for host in hosts:
        try:
            if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
                return False
        except ValueError:
            return False
        found = True
    return found


def resolves_to_loopback(host: str) -> bool | None:
    """Whether ``host`` (an address or a name) names loopback addresses only, as a listener would bind
    them; None when it does not resolve (the bind will say why)."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        return None
    return loopback_only(str(info[4][0]) for info in found)


def add_control_routes(app: web.Application, emulator: Emulator, root: str) -> None:
    """Register the control routes of ``emulator`` under ``root``, guarded (see the module's docstring)."""

    def guarded(handler: Handler) -> Handler:
        async def guard(request: web.Request) -> web.StreamResponse:
            s = emulator.settings
            if not emulator.control_open and not authorized(
                request.headers.get("Authorization", ""), s.api_key, s.api_secret
            ):
                return p.json_response(
                    {
                        "error": "the emulator listens beyond loopback: its control routes need the "
                        "API's credentials (HTTP Basic, the api key and secret)"
                    },
                    401,
                    headers={"WWW-Authenticate": 'Basic realm="facesync emulator control"'},
                )
            return await handler(request)

        return guard

    async def get_settings(request: web.Request) -> web.Response:
        return p.json_response(emulator.settings.to_dict())

    async def post_settings(request: web.Request) -> web.Response:
        try:
            changes = p.parse_json_object(await request.read())
            emulator.configure(**changes)
        except (p.Refusal, ValueError) as exc:
            return p.json_response({"error": str(exc) or "the body is not a JSON object"}, 400)
        return p.json_response(emulator.settings.to_dict())

    async def get_images(request: web.Request) -> web.Response:
        rows = [
            {"id": i.id, "sha256": i.sha256, "size": i.size, "metadata": i.metadata, "url": i.url}
            for i in emulator.images()
        ]
        return p.json_response(rows)

    async def get_requests(request: web.Request) -> web.Response:
        return p.json_response([r.to_dict() for r in emulator.requests])

    async def post_reset(request: web.Request) -> web.Response:
        emulator.reset()
        return p.json_response({"reset": True})

    async def post_seed(request: web.Request) -> web.Response:
        try:
            payload = p.parse_json_object(await request.read())
        except p.Refusal as exc:
            return p.json_response({"error": str(exc)}, 400)
        n, metadata = payload.get("n"), payload.get("metadata")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or not isinstance(metadata, dict | None):
            return p.json_response({"error": "expected {'n': count >= 0, 'metadata': object?}"}, 400)
        return p.json_response({"ids": emulator.seed(n, metadata)})

    r = app.router
    r.add_get(f"{root}/settings", guarded(get_settings))
    r.add_post(f"{root}/settings", guarded(post_settings))
    r.add_get(f"{root}/images", guarded(get_images))
    r.add_get(f"{root}/requests", guarded(get_requests))
    r.add_post(f"{root}/reset", guarded(post_reset))
    r.add_post(f"{root}/seed", guarded(post_seed))
