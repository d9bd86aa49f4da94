"""The probe's client: the five calls, plus what the client's mapping hides (``facesync probe``).

:class:`FaceSearchClient` turns every answer into a value or an error, as a run needs. The probe
(``pipeline/probe/``) needs what that hides: which field of an add's answer held the id, and which
HTTP status came with a refusal, with bad credentials or with throttling. :class:`ProbeClient` keeps
them, and sends the one request no run sends: a search body of an exact size (the body-size limit is
found with a body that can store nothing). Every request still takes the client's one path.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pipeline.api.answers import Op, RemoteImage, remote_images
from pipeline.api.client import FaceSearchClient
from pipeline.errors import AuthError, PipelineError, Rejected, Throttled

if TYPE_CHECKING:
    from pipeline.api.http import Body

#: How the client names an answer's HTTP status in its messages (``pipeline.api.answers.interpret``).
_SAID = re.compile(r"^\w+: HTTP (\d{3})\b")


def http_status_of(exc: PipelineError) -> int | None:
    """The HTTP status an error came with, when the service answered one."""
    if isinstance(exc, Rejected) and exc.http_status is not None:
        return exc.http_status
    found = _SAID.match(str(exc))
    return int(found.group(1)) if found else None


class ProbeClient(FaceSearchClient):
    """A client that also keeps the raw ``result`` of the last answer and the HTTP statuses of errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The ``result`` of the last successful answer, as the service sent it.
        self.last_result: Any = None
        #: HTTP status of the last answer that said bad credentials, and of the last throttled one.
        self.auth_status: int | None = None
        self.throttle_status: int | None = None

    async def _send(self, op: Op, method: str, target: str, body: Body | None) -> Any:
        try:
            result = await super()._send(op, method, target, body)
        except Throttled as exc:
            self.throttle_status = http_status_of(exc)
            raise
        except AuthError as exc:
            self.auth_status = http_status_of(exc)
            raise
        self.last_result = result
        return result

    async def search_body(self, body: bytes) -> list[RemoteImage]:
        """``POST /search`` with exactly ``body`` (built by the caller, any size)."""
        result = await self._call("search", lambda: self._send("search", "POST", "/search", body))
        return remote_images(result, "search")
