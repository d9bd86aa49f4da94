"""What a person reads after ``facesync probe``: one row a question — what was seen, what facesync does.

Pure: rows from the outcome and the config as the new profile changes it (``applied``), so the third
column says what the next run will really do.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.config import Config
from pipeline.config.profile import ServiceProfile, applied
from pipeline.probe.prober import Outcome

Row = tuple[str, str, str]
HEAD: Row = ("question", "seen", "what facesync does")
_ORDER = {"oldest_first": "oldest first", "newest_first": "newest first"}
_ORDER_DOES = {"newest_first": "pages by offset; repeats kept once"}


def size(n: int) -> str:
    """Bytes for people: ``1 MiB``, ``10 MB``, ``13.98 MB``."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 10**6 and n % 10**6 == 0:
        return f"{n // 10**6} MB"
    return f"{n / 10**6:.2f} MB" if n >= 10**6 else f"{n / 1000:.0f} KB"


def rows(out: Outcome, config: Config) -> list[Row]:
    """The table's rows (without the head)."""
    p = out.profile
    now = applied(config, p)
    unknown = "not measured" if out.skipped else "not seen"
    return [
        (
            "bad credentials",
            f"HTTP {p.auth_http_status}, code 5" if p.auth_http_status else "not seen",
            "stop at once, exit 3",
        ),
        ("image ids", f"{p.id_kind}, field '{p.id_field}'" if p.id_kind else unknown, "kept exactly as sent"),
        (
            "refusals (code 1, 3, 6)",
            f"HTTP {p.refusal_http_status}" if p.refusal_http_status else "not seen",
            "recorded, not retried",
        ),
        ("largest body", _body(p), f"files over {size(now.limits.max_image_bytes)} skipped"),
        (
            "listing page",
            f"{p.page_cap} images at most" if p.page_cap else f"{p.page_seen} seen, no cap met",
            f"pages of {now.api.page_size}",
        ),
        (
            "listing order",
            _ORDER.get(p.list_order or "", unknown),
            _ORDER_DOES.get(p.list_order or "", "pages by offset"),
        ),
        ("metadata in listings", *_metadata(p.list_metadata, unknown)),
        (
            "DELETE, unknown id",
            {"ignore": "ignored", "fail": "call refused"}.get(p.delete_unknown or "", unknown),
            "counted as gone",
        ),
        ("ids per DELETE", _delete(p, unknown), f"batches of {now.api.delete_batch}"),
        ("same bytes twice", *_dedup(p.dedup, unknown)),
        (
            "throttling (code 4)",
            f"HTTP {p.throttle_http_status}" if p.throttle_http_status else "not met",
            "all workers pause",
        ),
        ("probe's images", *_images(out)),
    ]


def lines(out: Outcome, config: Config) -> Iterator[str]:
    """The table as aligned text lines."""
    table = [HEAD, *rows(out, config)]
    widths = [max(len(row[i]) for row in table) for i in range(2)]
    for question, seen, does in table:
        yield f"  {question:<{widths[0]}}  {seen:<{widths[1]}}  {does}"


def _body(p: ServiceProfile) -> str:
    if p.max_body_bytes is None:
        return f"under {size(p.body_refused)}" if p.body_refused else "not measured"
    if p.body_refused is None:
        return f"{size(p.max_body_bytes)} taken, no limit met"
    if p.body_limit_exact:
        return f"{p.max_body_bytes:,} bytes at most"
    return f"{size(p.max_body_bytes)} to {size(p.body_refused)}"


def _metadata(shown: bool | None, unknown: str) -> tuple[str, str]:
    if shown is None:
        return unknown, "adopts where metadata shows"
    if shown:
        return "yes", "adopts lost uploads"
    return "no", "no adopting: re-uploads"


def _delete(p: ServiceProfile, unknown: str) -> str:
    if p.delete_cap is not None:
        return f"{p.delete_cap} at most"
    return f"{p.delete_tried} taken, no cap met" if p.delete_tried else unknown


def _dedup(dedup: bool | None, unknown: str) -> tuple[str, str]:
    if dedup is None:
        return unknown, "reconcile removes copies"
    if dedup:
        return "one image", "identical files share it"
    return "two images", "reconcile removes copies"


def _images(out: Outcome) -> tuple[str, str]:
    done = f"{len(out.added)} added, {out.removed} deleted"
    if out.left:
        return done, f"{len(out.left)} left: the next probe removes them"
    return done, {True: "none left (listing checked)", False: "still listed", None: "none left"}[out.verified]
