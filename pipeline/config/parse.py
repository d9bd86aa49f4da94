"""Reading the configuration: YAML (a JSON object is read as JSON, without importing PyYAML) is read here
and nowhere else, and every value is checked here.

Every problem is a :class:`ConfigError` naming the file and the key (exit 2), never a traceback,
and is found when the config is loaded — before any lock is taken, file created or request sent.
``${ENV_VAR}`` (and ``${ENV_VAR:-default}``) is interpolated in string values, so secrets stay out
of the file. Each section is walked by a :class:`~pipeline.config.reader.Reader`; the ``metadata:``
template is checked by :mod:`pipeline.config.template`.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.config.model import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_EXTENSIONS,
    EMBEDDED,
    EMBEDDED_KEY,
    EMBEDDED_SECRET,
    IMAGE_FORMATS,
    OWN_FIELDS,
    RESERVED_METADATA_KEYS,
    TRANSFORM_FORMATS,
    ApiConfig,
    Config,
    EmulatorConfig,
    LimitsConfig,
    SourceConfig,
    StateConfig,
    Threshold,
    TransformConfig,
    parse_duration,
)
from pipeline.config.profile import load_profiles
from pipeline.config.reader import Reader, Resolver
from pipeline.config.table import table_fields
from pipeline.config.template import check_template
from pipeline.errors import ConfigError


def _check_url(url: str, where: str) -> None:
    """Refuse what is not an http(s) URL with a host and a valid port, before any request is tried."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid URL ({exc}): {url!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise ConfigError(f"{where}: expected an http(s) URL or 'embedded', got {url!r}")


def _count_or_none(reader: Reader, key: str) -> int | None:
    """A whole number >= 1, or None when the key is not given (no such limit)."""
    return reader.integer(key, 0) if reader.get(key) is not None else None


def _known(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def parse_config(
    data: object, origin: Path | None = None, base_dir: Path | None = None, legacy_dir: Path | None = None
) -> Config:
    """Build a :class:`Config` from already-parsed YAML data. Pure but for one file, the header of
    ``metadata_table`` (whose columns a template may name); a relative path is checked for existence
    under ``legacy_dir`` only when it is not under ``base_dir``."""
    where = str(origin) if origin else "<config>"
    resolve = Resolver(base_dir if base_dir is not None else Path.cwd(), legacy_dir, where)
    top = Reader(where, "", data)
    top.check_known(
        {"api", "source", "state", "limits", "metadata", "metadata_table", "emulator", "transform"}
    )

    api_r = Reader(where, "api", top.raw.get("api"))
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
        max_answer_bytes=api_r.integer("max_answer_bytes", defaults.max_answer_bytes),
        profile=resolve(profile_s, "api.profile") if (profile_s := api_r.str_("profile", None)) else None,
    )
    if not api.embedded:
        for key in ("api_key", "api_secret"):
            if not getattr(api, key):
                raise ConfigError(f"{api_r.where(key)}: required when api.base_url is a URL")
    elif not api.api_key:
        api = replace(api, api_key=EMBEDDED_KEY, api_secret=api.api_secret or EMBEDDED_SECRET)

    src_r = Reader(where, "source", top.raw.get("source"))
    src_r.check_known(_known(SourceConfig))
    path_s = src_r.str_("path", None)
    manifest = src_r.str_("manifest", None)
    if path_s and manifest:
        raise ConfigError(f"{where}: source.path and source.manifest are exclusive; give one")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in src_r.strings("extensions", ()))
    if manifest and not manifest.startswith("s3://"):
        manifest = str(resolve(manifest, "source.manifest"))
    source = SourceConfig(
        path=resolve(path_s, "source.path") if path_s else None,
        manifest=manifest,
        bucket=src_r.str_("bucket", None),
        endpoint_url=src_r.str_("endpoint_url", None),
        region=src_r.str_("region", None),
        include=src_r.strings("include", ()),
        exclude=src_r.strings("exclude", ()),
        extensions=exts or DEFAULT_EXTENSIONS,
        follow_symlinks=src_r.boolean("follow_symlinks", False),
        ignore_ctime=src_r.boolean("ignore_ctime", False),
        ignore_inode=src_r.boolean("ignore_inode", False),
        archives=src_r.boolean("archives", False),
    )

    st_r = Reader(where, "state", top.raw.get("state"))
    st_r.check_known(_known(StateConfig))
    state = StateConfig(path=resolve(st_r.str_("path", None) or str(StateConfig.path), "state.path"))

    lim_r = Reader(where, "limits", top.raw.get("limits"))
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
        retry_time=lim_r.number("retry_time", ld.retry_time) or 0.0,
        max_duration=parse_duration(lim_r.get("max_duration"), lim_r.where("max_duration"))
        if lim_r.get("max_duration") is not None
        else None,
        max_requests=_count_or_none(lim_r, "max_requests"),
        requests_per_day=_count_or_none(lim_r, "requests_per_day"),
    )

    md_r = Reader(where, "metadata", top.raw.get("metadata"))
    metadata: dict[str, str] = {}
    for key in md_r.raw:
        name = str(key)
        if name in RESERVED_METADATA_KEYS or name in OWN_FIELDS:
            raise ConfigError(f"{md_r.where(name)}: '{name}' is reserved and cannot be set")
        value = md_r.raw[key]
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{md_r.where(name)}: expected a text template, got {value!r}")
        metadata[name] = str(value)
    table_s = top.str_("metadata_table", None)
    table = resolve(table_s, "metadata_table") if table_s else None
    columns = table_fields(table, top.where("metadata_table")) if table is not None else ()
    check_template(metadata, md_r.where, columns)

    em_r = Reader(where, "emulator", top.raw.get("emulator"))
    em_r.check_known(_known(EmulatorConfig))
    emulator_profile = em_r.str_("profile", None)
    emulator_at = resolve(emulator_profile, "emulator.profile") if emulator_profile else None
    emulator = EmulatorConfig(profile=emulator_at)

    transform = _transform(where, top.raw.get("transform", False))
    return Config(
        api,
        source,
        state,
        limits,
        metadata,
        origin=origin,
        emulator=emulator,
        transform=transform,
        notes=tuple(resolve.notes),
        metadata_table=table,
        table_fields=columns,
    )


def _transform(where: str, raw: object) -> TransformConfig:
    """The ``transform:`` section: on when given (``true``, or a mapping without ``enabled: false``)."""
    if isinstance(raw, bool):
        return TransformConfig(enabled=raw)
    r = Reader(where, "transform", raw)
    r.check_known(_known(TransformConfig))
    d = TransformConfig()
    fmt = (r.str_("format", d.format) or d.format).lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in TRANSFORM_FORMATS:
        raise ConfigError(f"{r.where('format')}: expected one of {', '.join(TRANSFORM_FORMATS)}, got {fmt!r}")
    convert = []
    for name in r.strings("convert", d.convert):
        kind = {"jpg": "jpeg", "tif": "tiff"}.get(name.lower().lstrip("."), name.lower().lstrip("."))
        if kind not in IMAGE_FORMATS:
            known = ", ".join(IMAGE_FORMATS)
            raise ConfigError(f"{r.where('convert')}: unknown image format {name!r} (known: {known})")
        convert.append(kind)
    quality = r.integer("quality", d.quality)
    if quality > 95:
        raise ConfigError(f"{r.where('quality')}: expected a whole number from 1 to 95, got {quality}")
    return TransformConfig(
        enabled=r.boolean("enabled", True),
        max_side=r.integer("max_side", d.max_side, minimum=64),
        format=fmt,
        quality=quality,
        convert=tuple(sorted(set(convert))),
        max_source_bytes=r.integer("max_source_bytes", d.max_source_bytes),
    )


def config_location(path: Path | str | None = None) -> Path:
    """The config file to use: ``path`` (``--config``), else ``$FACESYNC_CONFIG``, else
    ``$XDG_CONFIG_HOME/facesync/config.yaml`` (``~/.config/...``) if it exists, else
    ``configs/default.yaml`` in the working folder."""
    if path is not None:
        return Path(path)
    if env := os.environ.get("FACESYNC_CONFIG"):
        return Path(os.path.expanduser(env))
    home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    user = Path(home) / "facesync" / "config.yaml"
    return user if user.is_file() else DEFAULT_CONFIG_PATH


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a YAML (or JSON) config file (:func:`config_location` when ``path`` is None),
    then its service profiles (``config/profile.py``). Relative paths inside it are relative to the
    file's own folder."""
    file = config_location(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read config: {exc}") from None
    data = _json_object(text)
    if data is not None:
        return _loaded(data, file)
    import yaml  # 17 ms of imports, which a JSON config (the benches', many scripts') does not need

    # libyaml's safe loader when PyYAML was built with it (the wheels are): the same documents, a tenth
    # of the time (1.1 ms → 0.1 ms for configs/default.yaml).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}: not valid YAML{at}: {problem}") from None
    return _loaded(data, file)


def _json_object(text: str) -> dict[str, object] | None:
    """The config as JSON when it is a JSON object (JSON is YAML, but read without importing PyYAML);
    None for anything else, which YAML then reads (and refuses with its own message)."""
    if not text.lstrip().startswith("{"):
        return None
    try:  # NaN and Infinity are not JSON's own: YAML reads them as the strings they are
        data = json.loads(text, parse_constant=_not_json)
    except ValueError:  # YAML's flow style, or broken: YAML says which
        return None
    return data if isinstance(data, dict) else None


def _not_json(name: str) -> object:
    raise ValueError(name)


def _loaded(data: object, file: Path) -> Config:
    folder = file.absolute().parent
    return load_profiles(parse_config(data, origin=file, base_dir=folder, legacy_dir=Path.cwd()))
