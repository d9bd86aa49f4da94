"""The baselines: a bare aiohttp client doing only the HTTP part of a sync or a reconcile.

``python -m bench.bare upload --url U --dir D --concurrency N`` reads every ``*.jpg`` under D, builds the
same bodies facesync sends (base64 image + ``facesync_key``/``facesync_token`` metadata) *before* the
clock starts, then posts them with N tasks over one session and prints one JSON line.
``--stream`` reads and encodes each body in the task that posts it instead (nothing held: the whole job,
as a minimal client would do it); ``--stream --hash`` also takes each file's sha256.
``python -m bench.bare list --url U --page-size P`` pages ``GET /images`` to the end, as reconcile does.
``python -m bench.bare posts --url U --via aiohttp|pool -n N`` posts one ~100 KB image's body N times
with 32 tasks, through aiohttp's client or through facesync's own connections
(:class:`pipeline.api.http.HttpPool`): the HTTP layer alone, its CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import resource
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pybase64

from bench.common import API_KEY, API_SECRET

T = TypeVar("T")
AUTH = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def body_of(path: Path, root: Path, *, hashed: bool = False) -> bytes:
    """One image's add body, as :func:`bodies` builds it; with ``hashed``, its sha256 taken too (the one
    thing facesync must do per file that costs as much as the rest: the content identity)."""
    data = path.read_bytes()
    if hashed:
        hashlib.sha256(data).hexdigest()
    return body_of_bytes(data, str(path.relative_to(root)))


def body_of_bytes(data: bytes, key: str) -> bytes:
    meta = json.dumps({"facesync_key": key, "facesync_token": uuid.uuid4().hex})
    return b'{"image":{"base64":"' + pybase64.b64encode(data) + b'","metadata":' + meta.encode() + b"}}"


def bodies(root: Path) -> tuple[list[bytes], int]:
    """Every image's add body, pre-encoded; and the raw image bytes."""
    paths = sorted(root.rglob("*.jpg"))
    return [body_of(path, root) for path in paths], sum(path.stat().st_size for path in paths)


async def _post_all(
    url: str, todo: list[T], concurrency: int, body: Callable[[T], bytes]
) -> tuple[int, float, float]:
    """Post ``body(item)`` for every item with ``concurrency`` tasks over one session: how many were
    stored, the seconds and the CPU seconds the posting took."""
    headers = {"Authorization": AUTH, "Accept": "application/json", "Content-Type": "application/json"}
    queue: asyncio.Queue[T] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        while not queue.empty():
            data = body(queue.get_nowait())
            async with session.post(f"{url}/images", data=data, headers=headers) as answer:
                payload = json.loads(await answer.read())
            ok += payload.get("status_code") == 0

    connector = aiohttp.TCPConnector(limit=max(64, 2 * concurrency), keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        cpu0, started = _cpu(), time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return ok, time.perf_counter() - started, _cpu() - cpu0


async def upload(url: str, root: Path, concurrency: int) -> dict[str, Any]:
    todo, raw = bodies(root)
    ok, elapsed, cpu = await _post_all(url, todo, concurrency, lambda body: body)
    return {"images": len(todo), "ok": ok, "bytes": raw, "elapsed": elapsed, "cpu": cpu}


async def upload_streamed(url: str, root: Path, concurrency: int, *, hashed: bool = False) -> dict[str, Any]:
    """The whole job with nothing held: each task reads a file, encodes its body and posts it, as a
    minimal client of its own would (memory flat; :func:`upload` holds every body, which at 10,000 images
    is 1.3 GB of fresh pages to fault in)."""
    paths = sorted(root.rglob("*.jpg"))
    ok, elapsed, cpu = await _post_all(
        url, paths, concurrency, lambda path: body_of(path, root, hashed=hashed)
    )
    raw = sum(path.stat().st_size for path in paths)
    return {"images": len(paths), "ok": ok, "bytes": raw, "elapsed": elapsed, "cpu": cpu}


async def posts(url: str, via: str, count: int, concurrency: int) -> dict[str, Any]:
    """The same add body posted ``count`` times: what one request costs the client's CPU, by layer."""
    body = body_of_bytes(bytes(range(256)) * 400, "album/one.jpg")
    if via == "aiohttp":
        ok, elapsed, cpu = await _post_all(url, [body] * count, concurrency, lambda b: b)
        return {"via": via, "requests": count, "ok": ok, "elapsed": elapsed, "cpu": cpu}
    from pipeline.api.http import HttpPool
    from pipeline.api.transport import Credentials

    pool = HttpPool(url, Credentials(API_KEY, API_SECRET), limit=max(64, 2 * concurrency))
    stored = 0
    left = count

    async def worker() -> None:
        nonlocal stored, left
        while left > 0:
            left -= 1
            reply = await pool.request("add", "POST", "/images", body, limit=1 << 20)
            stored += json.loads(reply.body).get("status_code") == 0

    cpu0, started = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu0
    pool.close()
    return {"via": via, "requests": count, "ok": stored, "elapsed": elapsed, "cpu": cpu}


async def listing(url: str, page_size: int) -> dict[str, Any]:
    headers = {"Authorization": AUTH, "Accept": "application/json"}
    listed = pages = offset = 0
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        while True:
            params = {"offset": str(offset), "limit": str(page_size)}
            async with session.get(f"{url}/images", params=params, headers=headers) as answer:
                page = json.loads(await answer.read())["result"]
            pages += 1
            if not page:
                break
            listed += len(page)
            offset += len(page)
        elapsed = time.perf_counter() - started
    return {"listed": listed, "pages": pages, "elapsed": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    sub = parser.add_subparsers(dest="mode", required=True)
    up = sub.add_parser("upload")
    up.add_argument("--url", required=True)
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument("-c", "--concurrency", type=int, default=32)
    up.add_argument("--stream", action="store_true", help="read and encode each body as it is posted")
    up.add_argument("--hash", action="store_true", help="with --stream: take each file's sha256 too")
    po = sub.add_parser("posts")
    po.add_argument("--url", required=True)
    po.add_argument("--via", choices=("aiohttp", "pool"), default="aiohttp")
    po.add_argument("-n", "--count", type=int, default=10_000)
    po.add_argument("-c", "--concurrency", type=int, default=32)
    ls = sub.add_parser("list")
    ls.add_argument("--url", required=True)
    ls.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    if args.mode == "upload":
        if args.stream:
            result = asyncio.run(upload_streamed(args.url, args.dir, args.concurrency, hashed=args.hash))
        else:
            result = asyncio.run(upload(args.url, args.dir, args.concurrency))
    elif args.mode == "posts":
        result = asyncio.run(posts(args.url, args.via, args.count, args.concurrency))
    else:
        result = asyncio.run(listing(args.url, args.page_size))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
