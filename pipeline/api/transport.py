"""The edges of the HTTP layer: the credentials (the header sent, the secret never shown) and every
aiohttp or socket exception turned into the pipeline's errors, in one place (docs/client.md)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipeline.api.answers import AnswerTooLarge, Op
from pipeline.errors import ConfigError, Retryable

if TYPE_CHECKING:
    import aiohttp

#: Bytes asked for per read of an answer's body.
READ_CHUNK = 64 * 1024


class Credentials:
    """The API key and secret as HTTP Basic sends them, and :meth:`scrub`, which hides the secret."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode("ascii")
        #: The ``Authorization`` header's value.
        self.header = "Basic " + token
        self._secrets = tuple(s for s in (api_secret, token) if s)

    def scrub(self, text: str) -> str:
        """Hide the secret (and the header built from it) wherever it appears; a very short secret only
        where it stands alone — "s" inside "list" is not a leak, and hiding it would garble messages."""
        for secret in self._secrets:
            if len(secret) >= 8:
                text = text.replace(secret, "***")
            else:
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
        return text


@contextmanager
def translated(op: Op, credentials: Credentials) -> Iterator[None]:
    """Turn aiohttp's and the socket's exceptions into pipeline errors; the secret never leaks."""
    import aiohttp

    scrub = credentials.scrub
    try:
        yield
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        raise Retryable(scrub(f"{op}: cannot connect: {exc}"), sent=False) from None
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise Retryable(scrub(f"{op}: timed out: {type(exc).__name__} {exc}"), sent=True) from None
    except aiohttp.InvalidURL as exc:
        raise ConfigError(scrub(f"{op}: invalid URL: {exc}")) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise Retryable(scrub(f"{op}: connection failed: {type(exc).__name__} {exc}"), sent=True) from None


async def read_capped(resp: aiohttp.ClientResponse, op: Op, limit: int) -> bytes:
    """The answer's body, read a chunk at a time, or :class:`AnswerTooLarge` once it is over ``limit``
    bytes (after decompression: what memory holds). A ``Content-Length`` over the limit is refused before
    a byte is read; either way the connection is closed, so the rest is never fetched."""
    length = resp.content_length
    if length is not None and length > limit:
        resp.close()
        raise AnswerTooLarge(op, limit, length)
    body = bytearray()
    while chunk := await resp.content.read(min(READ_CHUNK, limit + 1 - len(body))):
        body += chunk
        if len(body) > limit:
            resp.close()
            raise AnswerTooLarge(op, limit)
    return bytes(body)
