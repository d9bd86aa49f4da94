"""The Face Search emulator: a local aiohttp.web server speaking the vendor's API, with fault knobs.

It is the embedded default (no credentials needed), the real HTTP peer of every test, the
standalone ``facesync serve``, and the target of benchmarks. Every API request passes one pipeline
(delay → stall → fail_before → auth → throttle → body size → the call) and leaves a record in the
request log, so tests can assert what a client did, and when.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hmac
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from pipeline.emulator import protocol as p
from pipeline.emulator.control import add_control_routes
from pipeline.emulator.settings import EmulatorSettings, apply_changes
from pipeline.emulator.store import (
    Decoded,
    DecodeError,
    Entry,
    ImageId,
    ImageStore,
    SeedMetadata,
    StoredImage,
    decode,
)

PREFIX = "/api/v2/face_search"
CONTROL = "/_emulator"
#: Big enough for any body; ``max_body_bytes`` is enforced by the emulator itself, at run time.
CLIENT_MAX_SIZE = 1 << 40

CallHandler = Callable[[web.Request, bytes], Awaitable[p.Answer]]


def _decode(data: bytes) -> Decoded:
    try:
        return decode(data)
    except DecodeError as exc:
        raise p.Refusal(p.BAD_IMAGE, str(exc)) from None


def _decode_search(body: bytes) -> Decoded:
    data, _ = p.parse_image(p.parse_json_object(body), "search")
    return _decode(data)


class _Dropped(Exception):
    """The call chose to close the connection without an answer."""


class Emulator:
    """One emulated Face Search account: its images, its settings, its request log, its server."""

    def __init__(self, data_dir: Path | None = None, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings if settings is not None else EmulatorSettings()
        self._defaults = self.settings.copy()
        self._data_dir = data_dir
        self._owns_dir = False
        self._store: ImageStore | None = None
        self._log: list[p.RequestRecord] = []
        self._rng = random.Random(self.settings.seed)
        self._admitted: collections.deque[float] = collections.deque()
        self._quota_used = 0
        self._quota_seen: int | None = self.settings.quota
        self._release: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = f"http://127.0.0.1:0{PREFIX}"

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.store.data_dir

    @property
    def store(self) -> ImageStore:
        """The image store, opened on first use (a None data dir becomes a fresh temp dir)."""
        if self._store is None:
            if self._data_dir is None or self._owns_dir:
                self._data_dir = Path(tempfile.mkdtemp(prefix="facesync-emulator-"))
                self._owns_dir = True
            self._data_dir.mkdir(parents=True, exist_ok=True)
            self._store = ImageStore(self._data_dir)
        return self._store

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); return the API base URL."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        _ = self.store
        self._release = asyncio.Event()
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0][1] if runner.addresses else port
        self.base_url = f"http://{host}:{bound}{PREFIX}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving (stalled calls are released) and close the store; a temp data dir is removed."""
        if self._release is not None:
            self._release.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._store is not None:
            self._store.close()
            self._store = None
            if self._owns_dir and self._data_dir is not None:
                shutil.rmtree(self._data_dir, ignore_errors=True)

    # -- Python-side control -------------------------------------------------------------------

    def configure(self, **changes: Any) -> EmulatorSettings:
        """Validate and apply setting changes (all or none); ValueError says what is wrong."""
        checked = apply_changes(self.settings, changes)
        if "seed" in checked:
            self._rng.seed(self.settings.seed)
        if "quota" in checked:
            self._quota_used = 0
            self._quota_seen = self.settings.quota
        if "rate_limit" in checked:
            self._admitted.clear()
        return self.settings

    def reset(self) -> None:
        """Wipe images and the request log, put settings back to the ones given at construction."""
        for f in fields(EmulatorSettings):
            setattr(self.settings, f.name, getattr(self._defaults, f.name))
        self._rng.seed(self.settings.seed)
        self._admitted.clear()
        self._quota_used = 0
        self._quota_seen = self.settings.quota
        if self._release is not None:
            self._release.set()
            self._release = asyncio.Event()
        self.store.wipe()
        self._log.clear()

    def images(self) -> list[StoredImage]:
        """Every stored image, in insertion order."""
        return [self._stored(e) for e in self.store.all()]

    @property
    def requests(self) -> list[p.RequestRecord]:
        """The request log (a copy), oldest first."""
        return list(self._log)

    def seed(self, n: int, metadata: SeedMetadata = None) -> list[ImageId]:
        """Insert ``n`` fake images without HTTP, in one transaction (for benches).

        They have no file (their url answers 404) and no hash (search never finds them).
        ``metadata`` is one mapping for all, or a function of the index 0..n-1.
        """
        s = self.settings
        ids = [self.store.new_id(s.id_kind, s.id_start, self._rng) for _ in range(n)]
        return self.store.seed(ids, metadata)

    def _url(self, key: str) -> str:
        return f"{self.base_url}/files/{key}"

    def _stored(self, e: Entry) -> StoredImage:
        return StoredImage(e.id, e.sha256, e.size, dict(e.metadata), self._url(e.key))

    # -- the app -------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application: API routes (auth, faults, log) and control routes (none)."""
        app = web.Application(client_max_size=CLIENT_MAX_SIZE)
        r = app.router
        r.add_get(f"{PREFIX}/files/{{key}}", self._file)
        r.add_get(f"{PREFIX}/images", self._api(self._list))
        r.add_post(f"{PREFIX}/images", self._api(self._add))
        r.add_delete(f"{PREFIX}/images", self._api(self._delete))
        r.add_put(f"{PREFIX}/images/{{image_id}}", self._api(self._update))
        r.add_post(f"{PREFIX}/search", self._api(self._search))
        r.add_route("*", f"{PREFIX}/{{tail:.*}}", self._api(self._unknown))
        add_control_routes(app, self, CONTROL)
        return app

    def _api(self, call: CallHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap one API call in the request pipeline: faults, auth, throttling, body limit, log."""

        async def handle(request: web.Request) -> web.StreamResponse:
            arrived = time.time()

            def log(http_status: int | None, status_code: int | None, outcome: str) -> None:
                record = p.RequestRecord(
                    arrived,
                    request.method,
                    request.path,
                    http_status,
                    status_code,
                    outcome,
                    request.query_string,
                )
                self._log.append(record)

            s = self.settings
            if s.delay > 0:
                await asyncio.sleep(self._rng.uniform(0.0, s.delay))
            if s.stall > 0 and self._rng.random() < s.stall:
                log(None, None, "stalled")
                await self._stall()
                return self._drop(request)
            if s.fail_before > 0 and self._rng.random() < s.fail_before:
                log(s.fail_status, None, "fail_before")
                return p.failure_response(s.fail_status, s.fail_body_html)
            if s.fail_list_from_offset is not None and self._is_list_from(request, s.fail_list_from_offset):
                log(s.fail_status, None, "fail_before")
                return p.failure_response(s.fail_status, s.fail_body_html)
            if not self._authorized(request):
                answer = p.Answer(s.auth_http_status, p.BAD_CREDENTIALS, outcome="auth")
            elif (s.throttle_share > 0 and self._rng.random() < s.throttle_share) or not self._admit():
                headers = {"Retry-After": f"{s.retry_after:g}"} if s.retry_after is not None else {}
                answer = p.Answer(
                    s.throttle_http_status, p.OUT_OF_REQUESTS, outcome="throttled", headers=headers
                )
            else:
                body = await self._read_body(request)
                if body is None:
                    answer = p.Answer(413, p.BAD_FORMAT, detail="the body is too large", outcome="rejected")
                else:
                    try:
                        answer = await call(request, body)
                    except p.Refusal as refusal:
                        answer = refusal.answer
                    except _Dropped:
                        log(None, None, "stored_then_drop")
                        return self._drop(request)
            if answer.outcome == "stored_then_fail":
                log(s.fail_status, None, answer.outcome)
                return p.failure_response(s.fail_status, s.fail_body_html)
            log(answer.http_status, answer.status_code, answer.outcome)
            return answer.response()

        return handle

    async def _stall(self) -> None:
        release = self._release or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), timeout=self.settings.stall_seconds)

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        """Close the connection: writing the returned response then fails quietly inside aiohttp."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        s = self.settings
        good_user = hmac.compare_digest(user.encode(), s.api_key.encode())
        return bool(sep) and good_user and hmac.compare_digest(password.encode(), s.api_secret.encode())

    def _admit(self) -> bool:
        """Count this request against the quota and the rate window; False when it must get code 4."""
        s = self.settings
        if s.quota != self._quota_seen:
            self._quota_seen, self._quota_used = s.quota, 0
        if s.quota is not None and self._quota_used >= s.quota:
            return False
        if s.rate_limit is not None:
            window = max(1.0, 1.0 / s.rate_limit)
            now = time.monotonic()
            while self._admitted and self._admitted[0] <= now - window:
                self._admitted.popleft()
            if len(self._admitted) + 1 > s.rate_limit * window + 1e-9:
                return False
            self._admitted.append(now)
        self._quota_used += 1
        return True

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The whole body, or None when it is over ``max_body_bytes`` (read to the end regardless)."""
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            total += len(chunk)
            if total <= limit:
                chunks.append(chunk)
            else:
                chunks.clear()
        return None if total > limit else b"".join(chunks)

    # -- the API calls -------------------------------------------------------------------------

    @staticmethod
    def _is_list_from(request: web.Request, offset: int) -> bool:
        if request.method != "GET" or not request.path.rstrip("/").endswith("/images"):
            return False
        try:
            return int(request.query.get("offset", "0")) >= offset
        except ValueError:
            return False

    async def _list(self, request: web.Request, body: bytes) -> p.Answer:
        s = self.settings
        offset = p.parse_count(request.query, "offset", 0, 0)
        limit = min(p.parse_count(request.query, "limit", s.page_cap, 1), s.page_cap)
        items: list[dict[str, Any]] = []
        if s.list_empty:
            return p.ok(items)
        for e in self.store.page(offset, limit):
            item: dict[str, Any] = {"id": e.id, "url": self._url(e.key)}
            if s.list_metadata:
                item["metadata"] = e.metadata
            items.append(item)
        return p.ok(items)

    def _prepare_add(self, body: bytes) -> tuple[Decoded, Path, dict[str, Any]]:
        """Parse, decode, hash and stage an add's image: the costly part, run in a worker thread."""
        data, raw_metadata = p.parse_image(p.parse_json_object(body), "add")
        metadata = p.parse_metadata(raw_metadata, required=False)
        decoded = _decode(data)
        return decoded, self.store.stage(data), metadata

    async def _add(self, request: web.Request, body: bytes) -> p.Answer:
        s = self.settings
        decoded, staged, metadata = await asyncio.to_thread(self._prepare_add, body)
        image_id = self.store.new_id(s.id_kind, s.id_start, self._rng)
        try:
            entry = self.store.add(image_id, decoded, staged, metadata)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        if s.store_then_drop > 0 and self._rng.random() < s.store_then_drop:
            raise _Dropped()
        answer = p.ok({s.add_id_field: entry.id, "url": self._url(entry.key), "metadata": metadata})
        if s.store_then_fail > 0 and self._rng.random() < s.store_then_fail:
            answer.outcome = "stored_then_fail"
        return answer

    async def _search(self, request: web.Request, body: bytes) -> p.Answer:
        decoded = await asyncio.to_thread(_decode_search, body)
        found = self.store.search(decoded.dhash, self.settings.search_threshold)
        return p.ok([{"id": e.id, "url": self._url(e.key), "score": round(1 - d / 64, 4)} for e, d in found])

    async def _update(self, request: web.Request, body: bytes) -> p.Answer:
        key = request.match_info["image_id"]
        payload = p.parse_json_object(body)
        if "image_id" in payload and str(payload["image_id"]) != key:
            raise p.Refusal(p.BAD_FORMAT, f"image_id {payload['image_id']!r} does not match the path")
        metadata = p.parse_metadata(payload.get("metadata"), required=True)
        if self.store.get(key) is None:
            raise p.Refusal(p.BAD_FORMAT, f"image not found: {key}", http_status=404)
        entry = self.store.update_metadata(key, metadata)
        return p.ok({self.settings.add_id_field: entry.id, "url": self._url(key), "metadata": metadata})

    async def _delete(self, request: web.Request, body: bytes) -> p.Answer:
        s = self.settings
        ids = p.parse_json_object(body).get("ids")
        if not isinstance(ids, list) or not all(
            isinstance(i, int | str) and not isinstance(i, bool) for i in ids
        ):
            raise p.Refusal(p.BAD_FORMAT, "ids must be a list of ids")
        if len(ids) > s.delete_cap:
            raise p.Refusal(p.BAD_FORMAT, f"at most {s.delete_cap} ids per call, got {len(ids)}")
        keys = [str(i) for i in ids]
        unknown = [k for k in keys if self.store.get(k) is None]
        if unknown and s.delete_unknown == "fail":
            raise p.Refusal(p.BAD_FORMAT, f"image not found: {', '.join(unknown[:10])}", http_status=404)
        self.store.delete(keys)
        return p.ok(None)

    async def _unknown(self, request: web.Request, body: bytes) -> p.Answer:
        known = request.path.rstrip("/") in {f"{PREFIX}/images", f"{PREFIX}/search"} or (
            request.path.startswith(f"{PREFIX}/images/")
        )
        if known:
            raise p.Refusal(p.BAD_FORMAT, f"method {request.method} not allowed here", http_status=405)
        raise p.Refusal(p.BAD_FORMAT, f"no such call: {request.method} {request.path}", http_status=404)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """The stored bytes of one image (no auth, no faults, not logged)."""
        key = request.match_info["key"]
        entry = self.store.get(key)
        if entry is None or not entry.has_file:
            answer = p.Answer(404, p.URL_UNAVAILABLE, detail=f"no file for image {key}", outcome="rejected")
            return answer.response()
        mime = Image.MIME.get(entry.fmt or "", "application/octet-stream")
        return web.Response(body=self.store.file_path(key).read_bytes(), content_type=mime)
