"""The S3 source's one door to S3: its botocore and aiobotocore clients, and their errors translated.

The scan runs in a worker thread with plain botocore; reads run on the event loop with one
aiobotocore client kept for the source's life. botocore's exceptions are met only in this module,
and leave it as ours, classed by what happens next::

    listing (manifest, data file, key list)  ScanError naming the file; bad credentials: AuthError
    HeadObject (a key-list line, no size)    None (no such object), a message (a scan error), AuthError
    GetObject (reading an item)              Skipped (vanished, changed, unreadable), AuthError,
                                             Retryable(sent=False) for 5xx / timeouts after retries
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.config import SourceConfig
from pipeline.errors import AuthError, Retryable, ScanError, Skipped
from pipeline.sources import CHANGED, UNREADABLE, VANISHED

#: Bytes asked for per read of a streamed body.
READ_CHUNK = 64 * 1024
_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket", "NoSuchVersion"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "InvalidObjectState", "AllAccessDisabled"})
_PRECONDITION = frozenset({"PreconditionFailed", "412"})
_BAD_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)


class S3Clients:
    """One source's two S3 clients, made on first use: botocore for the scan, aiobotocore for reads."""

    def __init__(self, config: SourceConfig, pool_size: int) -> None:
        self._config = config
        self._pool_size = pool_size
        self._sync: Any = None
        self._aio: Any = None
        self._aio_cm: AbstractAsyncContextManager[Any] | None = None
        self._aio_lock: asyncio.Lock | None = None

    def _settings(self) -> dict[str, Any]:
        """Region and endpoint from the config, else the environment; credentials: the default chain."""
        endpoint = (
            self._config.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        region = self._config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        options: dict[str, Any] = {
            "retries": {"mode": "standard", "max_attempts": 5},
            "connect_timeout": 10,
            "read_timeout": 60,
            "max_pool_connections": max(self._pool_size, 10),
        }
        if endpoint:  # S3-compatible stores (MinIO, Ceph, moto) rarely do virtual-host buckets
            options["s3"] = {"addressing_style": "path"}
        return {"region_name": region, "endpoint_url": endpoint, "options": options}

    def sync(self) -> Any:
        """The botocore client, for the scan's worker thread."""
        if self._sync is None:
            args = self._settings()
            self._sync = botocore.session.get_session().create_client(
                "s3",
                region_name=args["region_name"],
                endpoint_url=args["endpoint_url"],
                config=BotoConfig(**args["options"]),
            )
        return self._sync

    async def aio(self) -> Any:
        """The aiobotocore client, shared by every read on the event loop."""
        if self._aio is not None:
            return self._aio
        if self._aio_lock is None:
            self._aio_lock = asyncio.Lock()
        async with self._aio_lock:
            if self._aio is None:
                args = self._settings()
                cm = get_session().create_client(
                    "s3",
                    region_name=args["region_name"],
                    endpoint_url=args["endpoint_url"],
                    config=AioConfig(**args["options"]),
                )
                self._aio = await cm.__aenter__()
                self._aio_cm = cm
        return self._aio

    async def close(self) -> None:
        """Close both clients (each only if it was made)."""
        cm, self._aio_cm, self._aio = self._aio_cm, None, None
        if cm is not None:
            await cm.__aexit__(None, None, None)
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.close()

    @contextmanager
    def stream(self, bucket: str, key: str) -> Iterator[Callable[[int], bytes]]:
        """GetObject's body as a ``read(n)``, closed after. Use it inside :func:`listing_errors`."""
        body = self.sync().get_object(Bucket=bucket, Key=key)["Body"]
        try:
            yield body.read
        finally:
            body.close()

    def head(self, bucket: str, key: str) -> dict[str, Any] | str | None:
        """HeadObject's answer; None when there is no such object; a message saying why it failed."""
        try:
            answer: dict[str, Any] = self.sync().head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = _code(exc)
            _refuse_bad_credentials(code, f"s3://{bucket}/{key}")
            if code in _MISSING:
                return None
            return f"s3://{bucket}/{key}: HeadObject failed ({code})"
        except BotoCoreError as exc:
            return f"s3://{bucket}/{key}: HeadObject failed ({exc})"
        return answer


@contextmanager
def listing_errors(what: str) -> Iterator[None]:
    """Errors reading the listing (in S3 or local) → ScanError naming ``what``; bad credentials: AuthError."""
    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        _refuse_bad_credentials(code, what)
        if code in _MISSING:
            raise ScanError(f"{what}: not found ({code})") from None
        if code in _DENIED:
            raise ScanError(f"{what}: access denied ({code})") from None
        raise ScanError(f"{what}: S3 error {code}: {exc}") from None
    except BotoCoreError as exc:
        raise ScanError(f"{what}: {exc}") from None
    except FileNotFoundError:
        raise ScanError(f"{what}: file not found") from None
    except OSError as exc:
        raise ScanError(f"{what}: cannot read: {exc.strerror or exc}") from None


@contextmanager
def read_errors(key: str) -> Iterator[None]:
    """Errors of a GetObject for item ``key`` → Skipped, AuthError or Retryable(sent=False)."""
    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        _refuse_bad_credentials(code, f"GetObject {key}")
        if code in _MISSING:
            raise Skipped(VANISHED, "deleted since the inventory was written") from None
        if code in _PRECONDITION:
            raise Skipped(
                CHANGED, "ETag differs from the inventory's (changed since it was written)"
            ) from None
        if code in _DENIED:
            raise Skipped(UNREADABLE, f"access denied ({code})") from None
        raise Retryable(f"S3 GetObject {key}: {code}", sent=False) from None
    except (BotoCoreError, TimeoutError) as exc:
        raise Retryable(f"S3 GetObject {key}: {exc}", sent=False) from None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _refuse_bad_credentials(code: str, what: str) -> None:
    """AuthError (the run stops) when S3 rejected the credentials, whatever the request was."""
    if code in _BAD_CREDENTIALS:
        raise AuthError(f"S3 rejected the credentials ({code}) for {what}") from None
