"""A small raw HTTP client for the emulator tests: real sockets, the Authorization header built by hand."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp


def basic_auth(key: str, secret: str) -> str:
    """The Authorization header value (aiohttp 3.14 deprecates BasicAuth)."""
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Reply:
    """One HTTP answer: status, parsed JSON body (None when not JSON), raw text, headers."""

    status: int
    body: Any
    text: str
    headers: dict[str, str]

    @property
    def code(self) -> Any:
        return self.body["status_code"] if isinstance(self.body, dict) else None

    @property
    def result(self) -> Any:
        return self.body["result"]


class Api:
    """Raw calls against the emulator's API, answering :class:`Reply` whatever the status."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url
        self.auth = basic_auth("demo-key", "demo-secret")

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: str | bytes | None = None,
        auth: str | None = "default",
        total_timeout: float | None = None,
        url: str | None = None,
    ) -> Reply:
        headers = {}
        if auth is not None:
            headers["Authorization"] = self.auth if auth == "default" else auth
        extra: dict[str, Any] = {}
        if total_timeout is not None:
            extra["timeout"] = aiohttp.ClientTimeout(total=total_timeout)
        async with self.session.request(
            method, url or self.base_url + path, json=json, data=data, headers=headers, **extra
        ) as resp:
            text = await resp.text()
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            return Reply(resp.status, body, text, dict(resp.headers))

    async def add(self, image: bytes, metadata: dict[str, Any] | None = None, **kw: Any) -> Reply:
        payload: dict[str, Any] = {"base64": b64(image)}
        if metadata is not None:
            payload["metadata"] = metadata
        return await self.call("POST", "/images", json={"image": payload}, **kw)

    async def search(self, image: bytes) -> Reply:
        return await self.call("POST", "/search", json={"image": {"base64": b64(image)}})

    async def list(self, offset: int | str = 0, limit: int | str = 100) -> Reply:
        return await self.call("GET", f"/images?offset={offset}&limit={limit}")

    async def update(self, image_id: Any, metadata: Any) -> Reply:
        body = {"image_id": image_id, "metadata": metadata}
        return await self.call("PUT", f"/images/{image_id}", json=body)

    async def delete(self, ids: Sequence[Any]) -> Reply:
        return await self.call("DELETE", "/images", json={"ids": ids})

    async def control(self, method: str, path: str, json: Any = None) -> Reply:
        root = self.base_url.split("/api/")[0]
        return await self.call(method, "", url=f"{root}/_emulator{path}", json=json, auth=None)
