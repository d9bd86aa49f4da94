"""No answer is read whole: a listing page of 300 MB, an oversized add answer, a download and an S3
object longer than they should be are each refused once the limit is read, as one clear error.

The hostile peer is a real aiohttp server on 127.0.0.1 (its own loop, in a thread) that streams what
it answers lazily: the 300 MB page is never built in memory, on either side.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pipeline.api import FaceSearchClient
from pipeline.api.answers import AnswerTooLarge
from pipeline.api.limiter import Limiter
from pipeline.api.retry import RetryPolicy
from pipeline.config import SourceConfig, parse_config
from pipeline.errors import EXIT_FAILED, ConfigError, Rejected, Retryable, Skipped
from pipeline.sources import CHANGED
from pipeline.sources.s3 import S3Source, _longer
from pipeline.state import Row, State, Status
from tests.helpers import config_data, write_config_file
from tests.sources.conftest import new_bucket, s3, s3_endpoint

__all__ = ["s3", "s3_endpoint"]  # the moto fixtures, used here too

PREFIX = "/api/v2/face_search"
MB = 1024 * 1024
#: One listed image as a service would send it (about 200 bytes).
ITEM = json.dumps(
    {"id": "6f1c0a", "url": "http://127.0.0.1/x.jpg", "metadata": {"facesync_key": "a/IMG_0001.jpg"}}
).encode()


class Hostile:
    """A server that answers every API call with ``size`` bytes of a listing (streamed, never built),
    ``with_length``: announced in Content-Length or not (chunked). It counts what it was asked."""

    def __init__(self) -> None:
        self.size = 300 * MB
        self.with_length = False
        self.calls: list[str] = []
        self.sent = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(request.method)
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if self.with_length:
            resp.content_length = self.size
        await resp.prepare(request)
        head, block = b'{"status_code": 0, "result": [', b",".join([ITEM] * 5000) + b","
        try:
            await resp.write(head)
            left = self.size - len(head)
            while left > 0:
                chunk = block[:left]
                await resp.write(chunk)
                self.sent += len(chunk)
                left -= len(chunk)
        except (ConnectionError, RuntimeError):  # the client hung up: what it should do
            pass
        return resp

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", f"{PREFIX}/{{tail:.*}}", self._answer)
        app.router.add_get("/files/{name}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}{PREFIX}"

    def __enter__(self) -> Hostile:
        self._thread.start()
        self.base_url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    with Hostile() as server:
        yield server


@pytest.fixture
async def client(hostile: Hostile) -> AsyncIterator[FaceSearchClient]:
    fast = RetryPolicy(2, 0.001, 0.001)
    async with FaceSearchClient(
        hostile.base_url, "k", "s", retry=fast, limiter=Limiter(rate=None), max_answer_bytes=MB
    ) as c:
        yield c


def vm_hwm_kb(pid: int) -> int:
    """A running process's peak resident set (kB), or 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_watching_memory(cmd: list[str], cwd: Path, guard: float = 120) -> tuple[int, str, str, int]:
    """Run ``cmd``; its exit code, stdout, stderr and peak RSS in kB (its VmHWM, read as it runs:
    ``ru_maxrss`` would carry the RSS of this process at the fork)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    deadline = time.monotonic() + guard  # a hang guard, not a timing assertion
    while proc.poll() is None and time.monotonic() < deadline:
        peak = max(peak, vm_hwm_kb(proc.pid))
        time.sleep(0.005)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate(timeout=30)
    return proc.wait(), out.decode(), err.decode(), peak


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak RSS from /proc")
def test_reconcile_refuses_a_300_mb_listing_page_in_one_line_and_deletes_nothing(
    hostile: Hostile, tmp_path: Path
) -> None:
    (tmp_path / "archive").mkdir()
    data = config_data(hostile.base_url, tmp_path, limits={"retries": 1})
    config = write_config_file(tmp_path / "c.yaml", data)
    rows = [Row(f"a/{n}.jpg", 10, 1, Status.SYNCED, sha256="0" * 64, remote_id=n) for n in range(3)]
    with State.open(tmp_path / "state.db") as state:
        state.apply(put=rows)
    code, out, err, peak_kb = run_watching_memory(
        [sys.executable, "-m", "pipeline", "--config", str(config), "reconcile"], tmp_path
    )
    assert code == EXIT_FAILED, err
    assert out == ""
    [line] = [x for x in err.splitlines() if "max_answer_bytes" in x]
    assert "list: an answer longer than api.max_answer_bytes (8388608), cut short: " in line
    assert "nothing was deleted" in line
    assert "Traceback" not in err
    assert hostile.calls and set(hostile.calls) == {"GET"}  # listings only: no DELETE
    assert hostile.sent < hostile.size  # both attempts together took less than one page: cut short
    assert 0 < peak_kb < 200 * 1024, f"peak RSS {peak_kb} kB"
    with State.open(tmp_path / "state.db") as state:
        assert sorted((r.key, r.status, r.remote_id) for r in state.iter_rows()) == [
            (r.key, r.status, r.remote_id) for r in rows
        ]


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "chunked"])
async def test_an_oversized_answer_is_a_failed_call_the_breaker_counts(
    hostile: Hostile, client: FaceSearchClient, with_length: bool
) -> None:
    hostile.with_length, hostile.size = with_length, 20 * MB
    with pytest.raises(AnswerTooLarge) as err:
        await client.list_page(0)
    assert isinstance(err.value, Retryable) and err.value.sent
    said = (
        "an answer of 20971520 bytes, over api.max_answer_bytes (1048576), refused unread"
        if with_length
        else "an answer longer than api.max_answer_bytes (1048576), cut short"
    )
    assert str(err.value).startswith(f"list: {said}: not the API's answer")
    assert hostile.calls == ["GET", "GET"]  # the policy's two attempts, then given up
    assert client.breaker.failures == 1


async def test_an_add_whose_answer_is_too_large_may_have_been_stored(
    hostile: Hostile, client: FaceSearchClient
) -> None:
    hostile.size = 2 * MB
    with pytest.raises(AnswerTooLarge) as err:
        await client.add(b"aGVsbG8=", {"facesync_token": "t"})
    assert err.value.sent and err.value.lost_attempt  # the row stays uploading; reconcile settles it


async def test_a_download_longer_than_asked_is_refused_without_retry(
    hostile: Hostile, client: FaceSearchClient
) -> None:
    hostile.size = 2 * MB
    url = hostile.base_url.replace(PREFIX, "/files/x.jpg")
    with pytest.raises(Rejected, match="download: more than 1000 bytes"):
        await client.download(url, max_bytes=1000)
    assert hostile.calls == ["GET"]
    assert client.breaker.failures == 0
    hostile.size = 1000
    assert len(await client.download(url, max_bytes=1000)) == 1000


def test_max_answer_bytes_is_a_whole_number_of_bytes_with_a_default(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/api"
    assert parse_config(config_data(url, tmp_path)).api.max_answer_bytes == 8 * MB
    ok = parse_config(config_data(url, tmp_path, api={"max_answer_bytes": 1000}))
    assert ok.api.max_answer_bytes == 1000
    assert FaceSearchClient.from_config(ok.api, ok.limits).max_answer_bytes == 1000
    with pytest.raises(ConfigError, match=r"api\.max_answer_bytes: expected a whole number >= 1"):
        parse_config(config_data(url, tmp_path, api={"max_answer_bytes": 0}))


# ---- S3: a body longer than the inventory says --------------------------------------------------------


@pytest.fixture
def s3_object(s3: Any) -> tuple[str, bytes]:
    bucket = new_bucket(s3)
    data = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="big.jpg", Body=data)
    return bucket, data


async def test_s3_object_longer_than_the_inventory_says_is_refused_unread(
    s3_object: tuple[str, bytes], tmp_path: Path
) -> None:
    bucket, _ = s3_object
    listing = tmp_path / "keys.txt"
    listing.write_text(f"s3://{bucket}/big.jpg\t1000\t\n", encoding="utf-8")  # the list says 1,000 bytes
    source = S3Source(SourceConfig(manifest=str(listing)))
    try:
        [item] = await asyncio.to_thread(lambda: list(source.scan()))
        assert item.size == 1000
        with pytest.raises(Skipped) as err:
            await source.read(item, 10 * MB)
        assert (err.value.reason, err.value.detail) == (CHANGED, "300000 bytes, the inventory says 1000")
        assert source.bytes_downloaded == 0
    finally:
        await source.close()


class _Lying:
    """A streamed body that sends more than it announced (no Content-Length to refuse it by)."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.read_bytes = 0

    async def read(self, n: int) -> bytes:
        chunk = b"x" * min(n, self.left)
        self.left -= len(chunk)
        self.read_bytes += len(chunk)
        return chunk


async def test_s3_body_is_read_no_further_than_one_byte_past_the_inventory_size() -> None:
    source = S3Source(SourceConfig(manifest="unused.txt"))
    body = _Lying(300 * MB)
    with pytest.raises(Skipped) as err:
        await source._read_body(body, 1000, _longer(1000))
    assert (err.value.reason, err.value.detail) == (CHANGED, "more than 1000 bytes, the inventory says 1000")
    assert body.read_bytes == 1001
