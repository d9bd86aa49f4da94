"""Typed, frozen configuration. YAML is read here and nowhere else.

Every problem is a :class:`ConfigError` naming the file and the key (exit 2), never a traceback.
``${ENV_VAR}`` (and ``${ENV_VAR:-default}``) is interpolated in string values, so secrets stay out
of the file.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pipeline.errors import ConfigError

EMBEDDED = "embedded"
DEFAULT_CONFIG_PATH = Path("configs/default.yaml")
DEFAULT_BASE_URL = "https://cloud.computervision.com.vn/api/v2/face_search"
DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif")
RESERVED_METADATA_KEYS = frozenset({"user", "encoding", "_id"})
#: Metadata keys the pipeline itself writes on every image (the crash-safety token, the source key).
TOKEN_FIELD = "facesync_token"
KEY_FIELD = "facesync_key"
#: The embedded emulator's credentials when the config gives none.
EMBEDDED_KEY = "demo-key"
EMBEDDED_SECRET = "demo-secret"


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
    base_url: str = EMBEDDED
    api_key: str = ""
    api_secret: str = field(default="", repr=False)
    timeout: float = 60.0
    connect_timeout: float = 10.0
    page_size: int = 100
    delete_batch: int = 100

    @property
    def embedded(self) -> bool:
        return self.base_url == EMBEDDED


@dataclass(frozen=True)
class SourceConfig:
    path: Path | None = None
    manifest: str | None = None
    bucket: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    follow_symlinks: bool = False


@dataclass(frozen=True)
class StateConfig:
    path: Path = Path("state/facesync.db")


@dataclass(frozen=True)
class LimitsConfig:
    concurrency: int = 8
    rate: float | None = None
    max_delete: Threshold = Threshold(10.0, percent=True)
    max_missing: Threshold = Threshold(50.0, percent=True)
    max_image_bytes: int = 10 * 1024 * 1024
    quota_wait: float = 300.0
    retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 60.0


@dataclass(frozen=True)
class Config:
    api: ApiConfig = ApiConfig()
    source: SourceConfig = SourceConfig()
    state: StateConfig = StateConfig()
    limits: LimitsConfig = LimitsConfig()
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Where this config was read from (for messages); None when built in code.
    origin: Path | None = None

    def with_limits(self, **changes: Any) -> Config:
        return replace(self, limits=replace(self.limits, **changes))


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: str, where: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is None or (found == "" and default is not None):
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return found

    return _ENV.sub(sub, value)


class _Reader:
    """Walks one YAML mapping section, checking names and types, remembering where it is."""

    def __init__(self, origin: str, section: str, raw: object) -> None:
        self.origin = origin
        self.section = section
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            what = f"'{section}'" if section else "the top level"
            raise ConfigError(f"{origin}: {what} must be a mapping, got {type(raw).__name__}")
        self.raw: dict[str, Any] = dict(raw)

    def where(self, key: str) -> str:
        dotted = f"{self.section}.{key}" if self.section else key
        return f"{self.origin}: {dotted}"

    def check_known(self, known: set[str]) -> None:
        for key in self.raw:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
                raise ConfigError(f"{self.where(str(key))}: unknown key ({hint})")

    def get(self, key: str) -> Any:
        value = self.raw.get(key)
        if isinstance(value, str):
            value = _interpolate(value, self.where(key))
        return value

    def str_(self, key: str, default: str | None, *, secret: bool = False) -> str | None:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            got = type(value).__name__ if secret else repr(value)
            raise ConfigError(f"{self.where(key)}: expected text, got {got}")
        return str(value)

    def number(self, key: str, default: float | None, *, minimum: float = 0.0) -> float | None:
        value = self.get(key)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.where(key)}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{self.where(key)}: expected a finite number >= {minimum:g}, got {value!r}")
        if isinstance(value, bool) or number < minimum:
            raise ConfigError(f"{self.where(key)}: expected a number >= {minimum:g}, got {value!r}")
        return number

    def integer(self, key: str, default: int, *, minimum: int = 1) -> int:
        value = self.get(key)
        if value is None:
            return default
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{self.where(key)}: expected a whole number, got {value!r}") from None
        if isinstance(value, bool) or number < minimum or (isinstance(value, float) and value != number):
            raise ConfigError(f"{self.where(key)}: expected a whole number >= {minimum}, got {value!r}")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "yes", "1", "false", "no", "0"}:
            return value.lower() in {"true", "yes", "1"}
        raise ConfigError(f"{self.where(key)}: expected true or false, got {value!r}")

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.where(key)}: expected a list of strings, got {value!r}")
        return tuple(_interpolate(v, self.where(key)) for v in value)


def _check_url(url: str, where: str) -> None:
    """Refuse what is not an http(s) URL with a host and a valid port, before any request is tried."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid URL ({exc}): {url!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise ConfigError(f"{where}: expected an http(s) URL or 'embedded', got {url!r}")


def _known(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def parse_config(data: object, origin: Path | None = None, base_dir: Path | None = None) -> Config:
    """Build a :class:`Config` from already-parsed YAML data. Pure: no file is read."""
    where = str(origin) if origin else "<config>"
    base = base_dir if base_dir is not None else Path.cwd()
    top = _Reader(where, "", data)
    top.check_known({"api", "source", "state", "limits", "metadata"})

    api_r = _Reader(where, "api", top.raw.get("api"))
    api_r.check_known(_known(ApiConfig))
    defaults = ApiConfig()
    base_url = (api_r.str_("base_url", EMBEDDED) or EMBEDDED).rstrip("/")
    if base_url != EMBEDDED:
        _check_url(base_url, api_r.where("base_url"))
    api = ApiConfig(
        base_url=base_url,
        api_key=api_r.str_("api_key", "") or "",
        api_secret=api_r.str_("api_secret", "", secret=True) or "",
        timeout=api_r.number("timeout", defaults.timeout, minimum=0.001) or defaults.timeout,
        connect_timeout=api_r.number("connect_timeout", defaults.connect_timeout, minimum=0.001)
        or defaults.connect_timeout,
        page_size=api_r.integer("page_size", defaults.page_size),
        delete_batch=api_r.integer("delete_batch", defaults.delete_batch),
    )
    if not api.embedded:
        for key in ("api_key", "api_secret"):
            if not getattr(api, key):
                raise ConfigError(f"{api_r.where(key)}: required when api.base_url is a URL")
    elif not api.api_key:
        api = replace(api, api_key=EMBEDDED_KEY, api_secret=api.api_secret or EMBEDDED_SECRET)

    src_r = _Reader(where, "source", top.raw.get("source"))
    src_r.check_known(_known(SourceConfig))
    path_s = src_r.str_("path", None)
    manifest = src_r.str_("manifest", None)
    if path_s and manifest:
        raise ConfigError(f"{where}: source.path and source.manifest are exclusive; give one")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in src_r.strings("extensions", ()))
    if manifest and not manifest.startswith("s3://"):
        manifest = str(_resolve(base, manifest))
    source = SourceConfig(
        path=_resolve(base, path_s) if path_s else None,
        manifest=manifest,
        bucket=src_r.str_("bucket", None),
        endpoint_url=src_r.str_("endpoint_url", None),
        region=src_r.str_("region", None),
        include=src_r.strings("include", ()),
        exclude=src_r.strings("exclude", ()),
        extensions=exts or DEFAULT_EXTENSIONS,
        follow_symlinks=src_r.boolean("follow_symlinks", False),
    )

    st_r = _Reader(where, "state", top.raw.get("state"))
    st_r.check_known(_known(StateConfig))
    state = StateConfig(path=_resolve(base, st_r.str_("path", None) or str(StateConfig.path)))

    lim_r = _Reader(where, "limits", top.raw.get("limits"))
    lim_r.check_known(_known(LimitsConfig))
    ld = LimitsConfig()
    md_raw, mm_raw = lim_r.get("max_delete"), lim_r.get("max_missing")
    limits = LimitsConfig(
        concurrency=lim_r.integer("concurrency", ld.concurrency),
        rate=lim_r.number("rate", None, minimum=0.001),
        max_delete=Threshold.parse(md_raw, lim_r.where("max_delete"))
        if md_raw is not None
        else ld.max_delete,
        max_missing=Threshold.parse(mm_raw, lim_r.where("max_missing"))
        if mm_raw is not None
        else ld.max_missing,
        max_image_bytes=lim_r.integer("max_image_bytes", ld.max_image_bytes),
        quota_wait=lim_r.number("quota_wait", ld.quota_wait) or 0.0,
        retries=lim_r.integer("retries", ld.retries, minimum=0),
        backoff_base=lim_r.number("backoff_base", ld.backoff_base) or 0.0,
        backoff_max=lim_r.number("backoff_max", ld.backoff_max) or 0.0,
    )

    md_r = _Reader(where, "metadata", top.raw.get("metadata"))
    metadata: dict[str, str] = {}
    for key in md_r.raw:
        name = str(key)
        if name in RESERVED_METADATA_KEYS or name in {TOKEN_FIELD, KEY_FIELD}:
            raise ConfigError(f"{md_r.where(name)}: '{name}' is reserved and cannot be set")
        value = md_r.raw[key]
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{md_r.where(name)}: expected a text template, got {value!r}")
        metadata[name] = str(value)

    return Config(api=api, source=source, state=state, limits=limits, metadata=metadata, origin=origin)


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a YAML config file. Relative paths inside it are relative to the working dir."""
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read config: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}: not valid YAML{at}: {problem}") from None
    return parse_config(data, origin=file)
