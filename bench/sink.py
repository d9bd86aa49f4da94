"""A light sink for benches: the API's five calls answered in their shapes, with no work behind them.

``python -m bench.sink [--seed N] [--seed-kind facesync|legacy]`` prints one JSON line
``{"base_url": ...}`` once it listens on a free loopback port, then serves until SIGTERM or SIGINT.

Why: the emulator decodes and hashes every added image (it serves search), so against it a bench's
ratio to a bare client measures the emulator, which is the ceiling. The sink parses each request (the
JSON body, the query) and answers, nothing more: an add gets the next integer id, and only ids are
kept (no pixels, no file, no metadata); a listing page of the N seeded images is made on the fly from
their index (``--seed-kind facesync``: the metadata the reconcile bench's state holds; ``legacy``:
images facesync never sent), then the added ids; a delete forgets its ids; an update is parsed and
answered. ``POST /_emulator/reset`` forgets what was added and deleted (the seeded images stay).
It runs in its own process, pinned by :class:`bench.common.Sink` to the server's CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

from aiohttp import web

from bench.server import seed_key, seed_token

PREFIX = "/api/v2/face_search"
#: The emulator's default (``EmulatorSettings.page_cap``): a page asked for larger is cut to this.
PAGE_CAP = 1000
#: The first added image's id: far above any seeded one's (seeded ids are 1..N).
ADDED_FROM = 10**12


def answer(result: Any) -> web.Response:
    body = json.dumps({"result": result, "status_code": 0, "message": "ok"})
    return web.Response(body=body, content_type="application/json")


def refuse(message: str, status: int = 400) -> web.Response:
    body = json.dumps({"result": None, "status_code": 6, "message": message})
    return web.Response(body=body, status=status, content_type="application/json")


class Sink:
    """The state of the sink: how many images are seeded, the ids added and those deleted."""

    def __init__(self, seed: int, kind: str) -> None:
        self.seed = seed
        self.kind = kind
        self.added: dict[int, None] = {}  # in order of arrival
        self.deleted: set[int] = set()
        self.next_id = ADDED_FROM
        self.base_url = ""

    def _metadata(self, i: int) -> dict[str, Any]:
        if self.kind == "facesync":
            return {"facesync_key": seed_key(i), "facesync_token": seed_token(i)}
        return {"title": f"legacy {i}"}

    async def list(self, request: web.Request) -> web.Response:
        try:
            offset = int(request.query.get("offset", "0"))
            limit = min(int(request.query.get("limit", str(PAGE_CAP))), PAGE_CAP)
        except ValueError:
            return refuse("offset and limit must be integers")
        files = f"{self.base_url}/files/"
        items: list[dict[str, Any]] = []
        deleted = self.deleted
        # A seeded image i has id i + 1; deleted ones are skipped (few: the benches delete none of them).
        i = offset
        while len(items) < limit and i < self.seed:
            if i + 1 not in deleted:
                items.append({"id": i + 1, "url": f"{files}{i + 1}", "metadata": self._metadata(i)})
            i += 1
        if len(items) < limit and self.added:
            start = max(0, offset - self.seed)
            for image_id in list(self.added)[start : start + limit - len(items)]:
                items.append({"id": image_id, "url": f"{files}{image_id}", "metadata": None})
        return answer(items)

    async def add(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        image = payload.get("image") if isinstance(payload, dict) else None
        if not isinstance(image, dict) or not isinstance(image.get("base64"), str):
            return refuse("image.base64 is required")
        image_id = self.next_id
        self.next_id += 1
        self.added[image_id] = None
        return answer({"id": image_id, "url": f"{self.base_url}/files/{image_id}"})

    async def update(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        if not isinstance(payload, dict) or not isinstance(payload.get("metadata"), dict):
            return refuse("metadata is required")
        return answer(None)

    async def delete(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        ids = payload.get("ids") if isinstance(payload, dict) else None
        if not isinstance(ids, list):
            return refuse("ids must be a list of ids")
        for image_id in map(int, ids):
            if image_id in self.added:
                del self.added[image_id]
            elif image_id <= self.seed:
                self.deleted.add(image_id)
        return answer(None)

    async def search(self, request: web.Request) -> web.Response:
        json.loads(await request.read())
        return answer([])

    async def reset(self, request: web.Request) -> web.Response:
        self.added.clear()
        self.deleted.clear()
        self.next_id = ADDED_FROM
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_get(f"{PREFIX}/images", self.list)
        r.add_post(f"{PREFIX}/images", self.add)
        r.add_delete(f"{PREFIX}/images", self.delete)
        r.add_put(f"{PREFIX}/images/{{image_id}}", self.update)
        r.add_post(f"{PREFIX}/search", self.search)
        r.add_post("/_emulator/reset", self.reset)
        return app


async def serve(seed: int, kind: str) -> None:
    sink = Sink(seed, kind)
    runner = web.AppRunner(sink.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sink.base_url = f"http://127.0.0.1:{port}{PREFIX}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"base_url": sink.base_url}), flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sink")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-kind", choices=("facesync", "legacy"), default="legacy")
    args = parser.parse_args()
    asyncio.run(serve(args.seed, args.seed_kind))


if __name__ == "__main__":
    main()
