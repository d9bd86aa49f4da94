"""The configuration's model: typed, frozen values and their defaults (the defaults are the contract's).

Nothing here reads a file: :mod:`pipeline.config.parse` turns YAML into these values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.config.profile import ServiceProfile

EMBEDDED = "embedded"
DEFAULT_CONFIG_PATH = Path("configs/default.yaml")
DEFAULT_BASE_URL = "https://cloud.computervision.com.vn/api/v2/face_search"
DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif")
RESERVED_METADATA_KEYS = frozenset({"user", "encoding", "_id"})
#: Metadata keys the pipeline itself writes on every image (the crash-safety token, the source key).
TOKEN_FIELD = "facesync_token"
KEY_FIELD = "facesync_key"
#: ... and the content's sha256, so ``reconcile --adopt`` can tell a listed image is the file's content.
SHA_FIELD = "facesync_sha256"
#: ... and, for an image sent through ``transform:``, the settings it was made with (docs/transform.md).
TRANSFORM_FIELD = "facesync_transform"
#: Every metadata key facesync writes itself: a template or a sidecar cannot set them.
OWN_FIELDS = frozenset({TOKEN_FIELD, KEY_FIELD, SHA_FIELD, TRANSFORM_FIELD})
#: The embedded emulator's credentials when the config gives none.
EMBEDDED_KEY = "demo-key"
EMBEDDED_SECRET = "demo-secret"
#: The largest answer read from the service (``api.max_answer_bytes``): 8 MiB. A listing page of 100
#: images with facesync's metadata is about 30 KB, 1,000 images with a few KB of sidecar fields each a
#: few MB; and JSON decodes into up to ~25 times its size in Python objects (a page of tiny items), so
#: 8 MiB keeps even a hostile answer's decoded form near 200 MB. Why this number: docs/client.md.
DEFAULT_MAX_ANSWER_BYTES = 8 * 1024 * 1024


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(raw: object, where: str) -> float:
    """Seconds from ``90``, ``"5s"``, ``"90m"``, ``"4h"``, ``"1h30m"`` or ``"2d"``: a run's deadline
    (``limits.max_duration``, ``sync --max-duration``) is written as people say it."""
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw) and raw > 0:
        return float(raw)
    if isinstance(raw, str):
        text, total, number = raw.strip().lower(), 0.0, ""
        for char in text:
            if char.isdigit() or char == ".":
                number += char
            elif char in _DURATION_UNITS and number:
                try:
                    total += float(number) * _DURATION_UNITS[char]
                except ValueError:
                    break
                number = ""
            else:
                break
        else:
            if number:  # a bare number is seconds
                try:
                    total += float(number)
                except ValueError:
                    total = 0.0
            if total > 0 and math.isfinite(total):
                return total
    raise ConfigError(f"{where}: expected a duration like '90m', '4h', '1h30m' or seconds, got {raw!r}")


@dataclass(frozen=True)
class Threshold:
    """A limit given as a count (``50``) or as a share of a total (``"10%"``)."""

    value: float
    percent: bool = False

    def limit(self, total: int) -> int:
        """The largest allowed number out of ``total``."""
        if self.percent:
            return int(total * self.value / 100.0)
        return int(self.value)

    def allows(self, n: int, total: int) -> bool:
        return n <= self.limit(total)

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else str(int(self.value))

    @classmethod
    def parse(cls, raw: object, where: str) -> Threshold:
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: expected a count or a percentage like '10%', got {raw!r}")
        if isinstance(raw, int | float) and math.isfinite(raw) and raw >= 0 and raw == int(raw):
            return cls(float(raw))
        if isinstance(raw, str):
            text = raw.strip()
            try:
                if text.endswith("%"):
                    value = float(text[:-1])
                    if 0 <= value <= 100:
                        return cls(value, percent=True)
                elif int(text) >= 0:
                    return cls(float(int(text)))
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a count or a percentage like '10%', got {raw!r}")


@dataclass(frozen=True)
class ApiConfig:
    """The ``api:`` section: where the service is, the credentials, timeouts, page and batch sizes."""

    base_url: str = EMBEDDED
    api_key: str = ""
    api_secret: str = field(default="", repr=False)
    timeout: float = 60.0
    connect_timeout: float = 10.0
    page_size: int = 100
    delete_batch: int = 100
    #: Answers longer than this are refused unread (a broken proxy, not the API): a failed call.
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    #: The service profile to use (``facesync probe`` writes one beside the state by default).
    profile: Path | None = None

    @property
    def embedded(self) -> bool:
        return self.base_url == EMBEDDED


@dataclass(frozen=True)
class SourceConfig:
    """The ``source:`` section: a directory (``path``) or an S3 manifest, and which keys to keep."""

    path: Path | None = None
    manifest: str | None = None
    bucket: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    follow_symlinks: bool = False
    #: A file whose ctime (or inode) changed is read and hashed even when its size and mtime are as
    #: recorded (restic's rule); set these where the file system changes them on its own (some network
    #: and FUSE mounts renumber inodes on every mount).
    ignore_ctime: bool = False
    ignore_inode: bool = False
    #: Zip files found in the ``path`` folder are read as if unpacked (``source.path`` naming a zip, or a
    #: glob of zips, is always read so): keys are the paths inside them (docs/migrate.md).
    archives: bool = False


@dataclass(frozen=True)
class StateConfig:
    """The ``state:`` section: where the state DB of this archive lives."""

    path: Path = Path("state/facesync.db")


@dataclass(frozen=True)
class LimitsConfig:
    """The ``limits:`` section: concurrency, rate, guards, sizes, quota wait and retries."""

    concurrency: int = 8
    rate: float | None = None
    max_delete: Threshold = Threshold(10.0, percent=True)
    max_missing: Threshold = Threshold(50.0, percent=True)
    max_image_bytes: int = 10 * 1024 * 1024
    quota_wait: float = 300.0
    retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    #: Seconds one request may spend retrying, waits included: no retry starts after it.
    retry_time: float = 120.0
    #: A run's deadline in seconds (``sync --max-duration`` is the same): nothing new starts after it,
    #: exit 7. None: no deadline.
    max_duration: float | None = None
    #: Requests one run may send (every request: adds, PUTs, deletes, listing pages). None: no cap.
    max_requests: int | None = None
    #: Requests all runs on this state may send in any 24 hours (counted in the state). None: no cap.
    requests_per_day: int | None = None


#: The image formats (``engine/images.sniff``'s names) a ``transform.convert`` list may name.
IMAGE_FORMATS = ("jpeg", "png", "gif", "webp", "bmp", "tiff", "heic", "heif", "avif")
#: Output formats of a transform.
TRANSFORM_FORMATS = ("jpeg",)


@dataclass(frozen=True)
class TransformConfig:
    """The ``transform:`` section: what is sent instead of a file the service need not have whole
    (docs/transform.md). Off unless the section is given, so an existing state changes nothing."""

    enabled: bool = False
    #: The longest side, in pixels, of what is sent; a larger photo is scaled down to it.
    max_side: int = 1600
    #: The format of an image that is changed (a file that needs no change is sent as it is).
    format: str = "jpeg"
    #: Its encoder quality (1-95).
    quality: int = 85
    #: Source formats always converted to ``format``, whatever their size.
    convert: tuple[str, ...] = ("avif", "bmp", "heic", "heif", "tiff", "webp")
    #: The largest file read when transforming (``limits.max_image_bytes`` then bounds what is sent).
    max_source_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class EmulatorConfig:
    """The ``emulator:`` section: how the embedded emulator (``api.base_url: embedded``) behaves."""

    #: A service profile (``facesync probe``'s JSON) the embedded emulator plays.
    profile: Path | None = None


@dataclass(frozen=True)
class Config:
    """The whole configuration, as loaded from one file (``origin``) or built in code."""

    api: ApiConfig = ApiConfig()
    source: SourceConfig = SourceConfig()
    state: StateConfig = StateConfig()
    limits: LimitsConfig = LimitsConfig()
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Where this config was read from (for messages); None when built in code.
    origin: Path | None = None
    emulator: EmulatorConfig = EmulatorConfig()
    #: The service profile applied to the values above (``config/profile.py``); None: none measured.
    service: ServiceProfile | None = None
    transform: TransformConfig = TransformConfig()
    #: What loading it noticed and a person should read (a path found the old way).
    notes: tuple[str, ...] = ()
    #: A CSV of metadata (``metadata_table:``): a row per key, each other column a template field.
    metadata_table: Path | None = None
    #: Its columns other than the key's, read from its header when the config is loaded.
    table_fields: tuple[str, ...] = ()

    def with_limits(self, **changes: Any) -> Config:
        return replace(self, limits=replace(self.limits, **changes))


#: The fields of a photo's own metadata a template may name: from its sidecar (``photo.jpg.json``, a
#: Google Takeout one), else its XMP, else its EXIF; empty when it has none (docs/migrate.md).
PHOTO_FIELDS = ("people", "taken", "title", "description", "keywords", "lat", "lon", "camera")
#: The fields a ``metadata:`` template may name (see the README's configuration table).
TEMPLATE_FIELDS = ("key", "name", "stem", "parent", "album", "size", "mtime", "sha256", *PHOTO_FIELDS)
#: The fields a ``metadata_table`` column may not be named for: facts of the file itself (a column
#: named for ``album`` or a photo field fills it, for its key, where its cell is not empty).
FILE_FIELDS = ("key", "name", "stem", "parent", "size", "mtime", "sha256")


class FieldText(str):
    """The value of a :data:`PHOTO_FIELDS` field in a template: its format spec is the text shown when
    the photo lacks the field (``{taken:unknown}``), since a padding spec means little for free text."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return str(self) if self else spec
