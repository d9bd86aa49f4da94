"""Reading the service's answers: every answer to the pipeline's error tree, every result to a value.

Pure: no network, no aiohttp. Every answer is read twice over — the JSON ``status_code`` and the
HTTP status — because the API page leaves open which carries an error (``../shared/face-search-api.md``).
The table of what maps to what is in ``docs/client.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from pipeline.errors import AuthError, Fatal, Rejected, Retryable, Throttled
from pipeline.keys import ImageId

__all__ = [
    "Answer",
    "AnswerTooLarge",
    "Op",
    "ProtocolError",
    "RemoteImage",
    "interpret",
    "parse_retry_after",
]

Op = Literal["add", "list", "search", "update", "delete", "download"]

#: Status codes that mean "the service refused this input for good".
REJECT_CODES = frozenset({1, 2, 3, 6})
CODE_THROTTLED = 4
CODE_AUTH = 5
#: Calls about one image (or one batch of ids): a 4xx JSON answer refuses that input, not the run.
_PER_ITEM_OPS: frozenset[Op] = frozenset({"add", "search", "update", "delete"})
_ID_FIELDS = ("id", "_id", "image_id")


class ProtocolError(Fatal):
    """The service answered, but not in the documented shape (an add without an id, a list that is no list).

    Fatal, not Retryable: the same request would get the same answer, and for an add a retry could
    store the image a second time. The run stops; reconcile settles whatever was stored.
    """


class AnswerTooLarge(Retryable):
    """An answer longer than ``api.max_answer_bytes``, refused before it is all read.

    Not the API's answer (a broken proxy, a hostile endpoint): retried like any failed answer, then
    counted by the circuit breaker, and a listing it ends is a failed listing (reconcile changes
    nothing). ``sent``: the request reached the service, so an add may have been stored.
    """

    def __init__(self, op: Op, limit: int, length: int | None = None) -> None:
        said = (
            f"an answer of {length} bytes, over api.max_answer_bytes ({limit}), refused unread"
            if length is not None
            else f"an answer longer than api.max_answer_bytes ({limit}), cut short"
        )
        super().__init__(
            f"{op}: {said}: not the API's answer (a "
            "proxy's page? the wrong api.base_url?); raise api.max_answer_bytes if the service really "
            "answers this much",
            sent=True,
        )
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RemoteImage:
    """One image as the service describes it; ``id`` is opaque and kept exactly as returned."""

    id: ImageId
    url: str | None = None
    metadata: dict[str, Any] | None = None
    score: float | None = None
    #: An add answered after an earlier attempt of it was sent and lost: that attempt may have been
    #: stored too, so the collection may hold this image twice (reconcile settles it).
    duplicate_risk: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer as received: its status, its body, its Retry-After header."""

    status: int
    body: bytes
    retry_after: str | None


def interpret(op: Op, answer: Answer) -> Any:
    """Map one HTTP answer to its ``result`` or to the pipeline error that says what happens next."""
    status = answer.status
    payload: Any = None
    is_json = True
    try:
        payload = json.loads(answer.body)
    except ValueError:
        is_json = False
    code = payload.get("status_code") if isinstance(payload, dict) else None
    if isinstance(code, bool) or not isinstance(code, int):
        code = None
    message = payload.get("message") if isinstance(payload, dict) else None
    said = f"{op}: HTTP {status}" + (f", status_code {code}" if code is not None else "")
    said += f": {message}" if isinstance(message, str) and message else ""

    if code == 0:
        return payload.get("result")
    if code == CODE_THROTTLED or (code is None and status == 429):
        raise Throttled(said, retry_after=parse_retry_after(answer.retry_after))
    if code == CODE_AUTH or (code is None and status in (401, 403)):
        raise AuthError(f"{said} (check api.api_key and api.api_secret)")
    if code in REJECT_CODES:
        raise Rejected(said, code=code, http_status=status)
    if status == 413:
        raise Rejected(said, code=code, http_status=413)
    if status >= 500 or status == 408:
        raise Retryable(said if is_json else f"{said}: non-JSON answer {brief(answer.body)}", sent=True)
    if 400 <= status < 500 and is_json and op in _PER_ITEM_OPS:
        raise Rejected(said, code=code, http_status=status)
    if 400 <= status < 500:
        raise ProtocolError(f"{said}: {brief(answer.body)} (is api.base_url right?)")
    if code is not None:
        if op in _PER_ITEM_OPS:
            raise Rejected(f"{said} (unknown status_code)", code=code, http_status=status)
        raise ProtocolError(f"{said} (unknown status_code)")
    if not is_json:
        raise Retryable(f"{said}: non-JSON answer {brief(answer.body)}", sent=True)
    raise Retryable(f"{said}: answer without status_code: {brief(answer.body)}", sent=True)


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    import email.utils  # only for a date: 2 ms of imports a run that is never throttled does not pay

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now())


def remote_image(item: Mapping[str, Any], op: Op) -> RemoteImage:
    """One image of an answer, checked; read once per listed image, so the usual shape goes first."""
    image_id = item.get("id")
    if type(image_id) in (int, str) and type(item) is dict:  # the common case, as JSON decodes it
        url, metadata = item.get("url"), item.get("metadata")
        if "score" not in item and "similarity" not in item and type(metadata) in (dict, type(None)):
            return RemoteImage(cast(ImageId, image_id), url if type(url) is str else None, metadata)
    image_id = None
    for name in _ID_FIELDS:
        if item.get(name) is not None:
            image_id = item[name]
            break
    if image_id is None:
        raise ProtocolError(f"{op}: no id under {', '.join(_ID_FIELDS)} in {brief(item)}")
    if isinstance(image_id, bool) or not isinstance(image_id, int | str):
        raise ProtocolError(f"{op}: id is neither a number nor a string: {image_id!r}")
    url = item.get("url")
    metadata = item.get("metadata")
    score = item.get("score", item.get("similarity"))
    return RemoteImage(
        id=image_id,
        url=url if isinstance(url, str) else None,
        metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
    )


def remote_images(result: Any, op: Op) -> list[RemoteImage]:
    if result is None:
        return []
    if not isinstance(result, list):
        raise ProtocolError(f"{op}: expected a list of images, got {brief(result)}")
    images: list[RemoteImage] = []
    append, make, ids, nothing = images.append, RemoteImage, (int, str), (dict, type(None))
    for item in result:  # once per listed image: the usual shape is built inline, the rest checked
        if type(item) is dict and type(image_id := item.get("id")) in ids and "score" not in item:
            url, metadata = item.get("url"), item.get("metadata")
            if type(metadata) in nothing and "similarity" not in item:
                append(make(cast(ImageId, image_id), url if type(url) is str else None, metadata))
                continue
        if not isinstance(item, Mapping):
            raise ProtocolError(f"{op}: expected an object per image, got {brief(item)}")
        append(remote_image(item, op))
    return images


def listed_items(result: Any, op: Op) -> list[dict[str, Any]]:
    """A list answer's images as plain dicts of one checked shape: ``id`` (an int or a str, kept as
    returned), ``url`` (a str or absent) and ``metadata`` (a dict or absent). The usual item already has
    it and is passed on as decoded; any other is read by :func:`remote_image` (which knows the other id
    fields) and rewritten in that shape, or refused. Reconcile's listing reads every image this way:
    no object is built per image."""
    if result is None:
        return []
    if not isinstance(result, list):
        raise ProtocolError(f"{op}: expected a list of images, got {brief(result)}")
    ids, urls, nothing = (int, str), (str, type(None)), (dict, type(None))
    for n, item in enumerate(result):  # once per listed image
        if (
            type(item) is dict
            and type(item.get("id")) in ids
            and type(item.get("metadata")) in nothing
            and type(item.get("url")) in urls
        ):
            continue
        if not isinstance(item, Mapping):
            raise ProtocolError(f"{op}: expected an object per image, got {brief(item)}")
        image = remote_image(item, op)
        result[n] = {"id": image.id, "url": image.url, "metadata": image.metadata}
    return result


def brief(value: object, limit: int = 120) -> str:
    if isinstance(value, bytes | bytearray):
        text = bytes(value[:limit]).decode("utf-8", "replace")
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")
