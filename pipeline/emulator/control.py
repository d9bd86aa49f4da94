"""The emulator's control routes (no auth, no faults, not logged): what tests and benches steer it by.

``/_emulator/settings`` (GET, POST changes), ``/_emulator/images``, ``/_emulator/requests``,
``/_emulator/reset`` and ``/_emulator/seed`` mirror the Python-side methods of :class:`Emulator`,
for a standalone ``facesync serve`` driven from another process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from pipeline.emulator import protocol as p

if TYPE_CHECKING:
    from pipeline.emulator.server import Emulator


def add_control_routes(app: web.Application, emulator: Emulator, root: str) -> None:
    """Register the control routes of ``emulator`` under ``root``."""

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
    r.add_get(f"{root}/settings", get_settings)
    r.add_post(f"{root}/settings", post_settings)
    r.add_get(f"{root}/images", get_images)
    r.add_get(f"{root}/requests", get_requests)
    r.add_post(f"{root}/reset", post_reset)
    r.add_post(f"{root}/seed", post_seed)
