"""The Face Search emulator: a local aiohttp.web server speaking the vendor's API, with fault knobs.

It is the embedded default (no credentials needed), the real HTTP peer of every test, the
standalone ``facesync serve``, and the target of benchmarks. This module holds the emulator's
lifecycle, its Python-side control and the five API calls; every API request reaches a call through
the request pipeline (:mod:`pipeline.emulator.request_pipeline`: faults, auth, throttling, body
limit) and leaves a record in the request log, so tests can assert what a client did, and when.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from pipeline.emulator import protocol as p
from pipeline.emulator.access import access_middleware
from pipeline.emulator.clock import Clock, SystemClock
from pipeline.emulator.control import add_control_routes, loopback_only
from pipeline.emulator.imaging import Decoded, DecodeError, decode
from pipeline.emulator.request_pipeline import Dropped, RequestLog, RequestPipeline, quiet_disconnects
from pipeline.emulator.settings import EmulatorSettings, apply_changes
from pipeline.emulator.store import Entry, ImageId, ImageStore, SeedMetadata, StoredImage
from pipeline.emulator.throttle import Throttle

PREFIX = "/api/v2/face_search"
CONTROL = "/_emulator"
#: Big enough for any body; ``max_body_bytes`` is enforced by the emulator itself, at run time.
CLIENT_MAX_SIZE = 1 << 40


def _decode(data: bytes) -> Decoded:
    try:
        return decode(data)
    except DecodeError as exc:
        raise p.Refusal(p.BAD_IMAGE, str(exc)) from None


def _decode_search(body: bytes) -> Decoded:
    data, _ = p.parse_image(p.parse_json_object(body), "search")
    return _decode(data)


class Emulator:
    """One emulated Face Search account: its images, its settings, its request log, its server."""

    def __init__(
        self,
        data_dir: Path | None = None,
        settings: EmulatorSettings | None = None,
        *,
        clock: Clock | None = None,
        access: Callable[[str], None] | None = None,
    ) -> None:
        """``clock`` drives the rate window and ``delay`` (default: the real one; tests pass a fake);
        ``access`` gets one line per request (:mod:`pipeline.emulator.access`: ``serve --log``)."""
        self.settings = settings if settings is not None else EmulatorSettings()
        self._defaults = self.settings.copy()
        self._data_dir = data_dir
        self._owns_dir = False
        self._store: ImageStore | None = None
        self._rng = random.Random(self.settings.seed)
        self._log = RequestLog()
        clock = clock if clock is not None else SystemClock()
        self._throttle = Throttle(clock, self.settings.quota)
        self._pipeline = RequestPipeline(self.settings, self._rng, clock, self._throttle, self._log)
        self._runner: web.AppRunner | None = None
        self._access = access
        self.base_url = f"http://127.0.0.1:0{PREFIX}"
        #: Whether the control routes answer without credentials: only while every address listened on
        #: is a loopback one (set once bound; closed until then).
        self.control_open = False

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
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        self.control_open = False
        await site.start()
        self._runner = runner
        self.control_open = loopback_only(str(address[0]) for address in runner.addresses)
        bound = runner.addresses[0][1] if runner.addresses else port
        self.base_url = f"http://{host}:{bound}{PREFIX}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving (stalled calls are released) and close the store; a temp data dir is removed."""
        self._pipeline.release_stalls()
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
            self._throttle.restart_quota(self.settings.quota)
        if "rate_limit" in checked:
            self._throttle.clear_window()
        return self.settings

    def reset(self) -> None:
        """Wipe images and the request log, put settings back to the ones given at construction."""
        for f in fields(EmulatorSettings):
            setattr(self.settings, f.name, getattr(self._defaults, f.name))
        self._rng.seed(self.settings.seed)
        self._throttle.clear_window()
        self._throttle.restart_quota(self.settings.quota)
        self._pipeline.reset()
        self.store.wipe()
        self._log.clear()

    def images(self) -> list[StoredImage]:
        """Every stored image, in insertion order."""
        return [self._stored(e) for e in self.store.all()]

    @property
    def requests(self) -> list[p.RequestRecord]:
        """The request log (a copy), oldest first."""
        return self._log.records()

    async def wait_for_requests(self, count: int) -> list[p.RequestRecord]:
        """Wait until the request log holds at least ``count`` records; return it (a copy).

        For tests: wait on what the emulator did rather than on the clock.
        """
        return await self._log.wait_for(count)

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
        """The aiohttp application: API routes (auth, faults, log) and control routes (credentials
        unless on loopback: :mod:`pipeline.emulator.control`)."""
        logged = [access_middleware(self._access, self.settings)] if self._access is not None else []
        app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[*logged, quiet_disconnects])
        api = self._pipeline.wrap
        r = app.router
        r.add_get(f"{PREFIX}/files/{{key}}", self._file)
        r.add_get(f"{PREFIX}/images", api(self._list))
        r.add_post(f"{PREFIX}/images", api(self._add))
        r.add_delete(f"{PREFIX}/images", api(self._delete))
        r.add_put(f"{PREFIX}/images/{{image_id}}", api(self._update))
        r.add_post(f"{PREFIX}/search", api(self._search))
        r.add_route("*", f"{PREFIX}/{{tail:.*}}", api(self._unknown))
        add_control_routes(app, self, CONTROL)
        return app

    # -- the API calls -------------------------------------------------------------------------

    async def _list(self, request: web.Request, body: bytes) -> p.Answer:
        s = self.settings
        offset = p.parse_count(request.query, "offset", 0, 0)
        limit = min(p.parse_count(request.query, "limit", s.page_cap, 1), s.page_cap)
        items: list[dict[str, Any]] = []
        if s.list_empty:
            return p.ok(items)
        if s.list_shift_deletes and offset > 0:
            self._shift(offset, s.list_shift_deletes)
        for e in self.store.page(offset, limit, newest_first=s.list_order == "newest_first"):
            item: dict[str, Any] = {"id": e.id, "url": self._url(e.key)}
            if s.list_metadata:
                item["metadata"] = e.metadata
            items.append(item)
        return p.ok(items)

    def _shift(self, offset: int, count: int) -> None:
        """Someone else deletes ``count`` of their images among those before ``offset``."""
        before = self.store.page(0, offset)
        foreign = [e.key for e in before if "facesync_key" not in e.metadata][:count]
        self.store.delete(foreign)

    def _prepare_add(self, body: bytes) -> tuple[Decoded, Path, dict[str, Any]]:
        """Parse, decode, hash and stage an add's image: the costly part, run in a worker thread."""
        data, raw_metadata = p.parse_image(p.parse_json_object(body), "add")
        metadata = p.parse_metadata(raw_metadata, required=False)
        decoded = _decode(data)
        return decoded, self.store.stage(data), metadata

    async def _add(self, request: web.Request, body: bytes) -> p.Answer:
        s = self.settings
        if s.fast_adds:
            return self._add_bare(body)
        decoded, staged, metadata = await asyncio.to_thread(self._prepare_add, body)
        same = self.store.with_sha256(decoded.sha256) if s.dedup else None
        if same is not None:
            staged.unlink(missing_ok=True)
            return p.ok({s.add_id_field: same.id, "url": self._url(same.key), "metadata": same.metadata})
        image_id = self.store.new_id(s.id_kind, s.id_start, self._rng)
        try:
            entry = self.store.add(image_id, decoded, staged, metadata)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        if s.store_then_drop > 0 and self._rng.random() < s.store_then_drop:
            raise Dropped()
        answer = p.ok({s.add_id_field: entry.id, "url": self._url(entry.key), "metadata": metadata})
        if s.store_then_fail > 0 and self._rng.random() < s.store_then_fail:
            answer.outcome = "stored_then_fail"
        return answer

    def _add_bare(self, body: bytes) -> p.Answer:
        """``fast_adds``: keep the bytes' sha256, size and metadata only; no decode, no file, no fault."""
        s = self.settings
        data, raw_metadata = p.parse_image(p.parse_json_object(body), "add")
        metadata = p.parse_metadata(raw_metadata, required=False)
        image_id = self.store.new_id(s.id_kind, s.id_start, self._rng)
        entry = self.store.add_bare(image_id, hashlib.sha256(data).hexdigest(), len(data), metadata)
        return p.ok({s.add_id_field: entry.id, "url": self._url(entry.key), "metadata": metadata})

    async def _search(self, request: web.Request, body: bytes) -> p.Answer:
        decoded = await asyncio.to_thread(_decode_search, body)
        found = self.store.search(decoded.dhash, self.settings.search_threshold)
        return p.ok([{"id": e.id, "url": self._url(e.key), "score": round(1 - d / 64, 4)} for e, d in found])

    async def _update(self, request: web.Request, body: bytes) -> p.Answer:
        key = request.match_info["image_id"]
        payload = p.parse_json_object(body)
        if "image_id" in payload and str(payload["image_id"]) != key:
            raise p.Refusal(p.BAD_FORMAT, f"image_id {p.show(payload['image_id'])} does not match the path")
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
