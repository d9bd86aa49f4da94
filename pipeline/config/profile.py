"""The service profile: what ``facesync probe`` measured of one Face Search endpoint, kept as JSON.

The API page leaves open the answers that decide correctness (``docs/service.md``): which field holds
an add's id and of what type, which HTTP status comes with which ``status_code``, the most images a
listing page returns and in what order, whether listings carry metadata, the most ids one DELETE
takes, what an unknown id does, whether the same bytes added twice make one image, the largest body.
The probe writes its answers to ``service-profile.json`` beside the state (or to ``api.profile``);
loading the config applies them (:func:`applied`), and the emulator can play them
(:mod:`pipeline.emulator.profile`). None is a question the probe could not answer: facesync then
keeps its cautious default.

Read at config load, so it lives with the config (no network stack imported); a profile that cannot
be read is a :class:`~pipeline.errors.ConfigError` naming the file (exit 2), like any config error.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config.model import ApiConfig
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.config.model import Config

PROFILE_NAME = "service-profile.json"
VERSION = 1
#: Room an add's body needs around the base64: the JSON wrapping and the metadata facesync sends.
ADD_OVERHEAD = 4096

_CHOICES: dict[str, tuple[object, ...]] = {
    "id_field": ("id", "_id", "image_id"),
    "id_kind": ("int", "str"),
    "list_order": ("oldest_first", "newest_first"),
    "delete_unknown": ("ignore", "fail"),
}
_STATUSES = {"auth_http_status", "refusal_http_status", "throttle_http_status"}
_BOOLS = {"list_metadata", "dedup"}
_POSITIVE = {"page_cap", "delete_cap", "max_body_bytes", "body_refused"}
_COUNTS = {"requests", "page_seen", "delete_tried"}


@dataclass(frozen=True)
class ServiceProfile:
    """One endpoint's answers to the questions the API page leaves open (None: not answered)."""

    #: ``api.base_url`` as the config gives it (``embedded`` for the embedded emulator).
    endpoint: str
    #: When it was measured (seconds since the epoch).
    measured_at: float
    #: Requests the probe sent.
    requests: int = 0
    #: The field of an add's answer that holds the new id, and the id's JSON type.
    id_field: str | None = None
    id_kind: str | None = None
    #: HTTP status of bad credentials (code 5), of refusals (codes 1, 3, 6), of throttling (code 4).
    auth_http_status: int | None = None
    refusal_http_status: int | None = None
    throttle_http_status: int | None = None
    #: Most images one listing page returns (None: no short page was seen before the end) ...
    page_cap: int | None = None
    #: ... and the largest page seen.
    page_seen: int = 0
    list_order: str | None = None
    list_metadata: bool | None = None
    #: Most ids one DELETE takes (None: it took every count tried) ...
    delete_cap: int | None = None
    #: ... and the largest DELETE tried.
    delete_tried: int = 0
    #: Unknown ids in a DELETE: ignored, or the call fails.
    delete_unknown: str | None = None
    #: Whether the same bytes added twice give one image.
    dedup: bool | None = None
    #: The largest body accepted, and the smallest refused (None: none was refused).
    max_body_bytes: int | None = None
    body_refused: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The profile as written to its file."""
        return {"version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: object, where: str) -> ServiceProfile:
        """A profile from its file's JSON; ConfigError naming ``where`` and the field when it is wrong."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: not a service profile (expected a JSON object)")
        version = data.get("version")
        if version != VERSION:
            raise ConfigError(f"{where}: service profile version {version!r}, expected {VERSION}")
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "version":
                continue
            if name not in known:
                raise ConfigError(f"{where}: unknown field {name!r} in the service profile")
            values[name] = _checked(name, value, where)
        for name in ("endpoint", "measured_at"):
            if name not in values:
                raise ConfigError(f"{where}: the service profile has no {name!r}")
        return cls(**values)

    @property
    def body_limit_exact(self) -> bool:
        """Whether the body limit is known to the byte (the largest accepted is one under the refused)."""
        return self.max_body_bytes is not None and self.body_refused == self.max_body_bytes + 1


def _checked(name: str, value: object, where: str) -> object:
    """``value`` for field ``name``, or ConfigError saying what is wrong."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {name}: expected {expected}, got {value!r}")

    if name == "endpoint":
        if not isinstance(value, str) or not value:
            raise bad("the endpoint's URL or 'embedded'")
        return value
    if name == "measured_at":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad("a time in seconds")
        return float(value)
    if value is None and name not in _COUNTS:
        return None
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise bad("one of " + ", ".join(map(repr, _CHOICES[name])))
        return value
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise bad("true, false or null")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad("a whole number")
    if name in _STATUSES and not 100 <= value <= 599:
        raise bad("an HTTP status")
    if (name in _POSITIVE and value < 1) or value < 0:
        raise bad("a whole number >= 1" if name in _POSITIVE else "a whole number >= 0")
    return value


# -- where it lives, reading and writing -------------------------------------------------------------


def profile_path(config: Config) -> Path:
    """Where ``config``'s profile is: ``api.profile``, else ``service-profile.json`` beside the state."""
    if config.api.profile is not None:
        return config.api.profile
    return config.state.path.parent / PROFILE_NAME


def read_profile(path: Path) -> ServiceProfile:
    """The profile in ``path``; ConfigError (exit 2) naming the file when it is missing or wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: service profile not found (`facesync probe` writes one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the service profile: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: the service profile is not JSON: {exc}") from None
    return ServiceProfile.from_json(data, str(path))


def write_profile(path: Path, profile: ServiceProfile) -> None:
    """Write ``profile`` to ``path`` atomically (a crash leaves the old file or the new one)."""
    write_json(path, profile.to_json())


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as JSON to ``path`` atomically and durably (temp file, fsync, rename)."""
    import tempfile  # here: loading a config (every run) need not import it (and shutil, random, bz2 …)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_profiles(config: Config) -> Config:
    """``config`` with its profiles read: ``emulator.profile`` checked, the measured profile applied.

    ``api.profile`` must exist and is applied whatever endpoint it was measured at (the user named
    it). The default one, beside the state, is applied only when it was measured at this endpoint.
    """
    if config.emulator.profile is not None:
        read_profile(config.emulator.profile)
    path = profile_path(config)
    if config.api.profile is None and not path.exists():
        return config
    try:
        profile = read_profile(path)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (remove it, then run `facesync probe` again)") from None
    if config.api.profile is None and profile.endpoint != config.api.base_url:
        return config
    return applied(config, profile)


# -- what the answers change --------------------------------------------------------------------------


def body_for_image(image_bytes: int) -> int:
    """The size of the add body facesync sends for an image of ``image_bytes`` (base64 + room)."""
    return 4 * -(-image_bytes // 3) + ADD_OVERHEAD


def image_for_body(body_bytes: int) -> int:
    """The largest image whose add body fits in ``body_bytes`` (the inverse of :func:`body_for_image`)."""
    return max(1, (body_bytes - ADD_OVERHEAD) // 4 * 3)


def applied(config: Config, profile: ServiceProfile) -> Config:
    """``config`` as the service's answers change it (pure). A value left at its default follows the
    service (a page of ``page_cap`` images, DELETEs of ``delete_cap`` ids); a value set otherwise is
    kept, within the service's caps; files whose add body the service refuses are skipped locally."""
    api, limits = config.api, config.limits
    page, batch, most = api.page_size, api.delete_batch, limits.max_image_bytes
    if profile.page_cap is not None and page == ApiConfig.page_size:
        page = profile.page_cap
    if profile.delete_cap is not None:
        batch = profile.delete_cap if batch == ApiConfig.delete_batch else min(batch, profile.delete_cap)
    if profile.body_refused is not None and profile.max_body_bytes is not None:
        most = min(most, image_for_body(profile.max_body_bytes))
    return replace(
        config,
        api=replace(api, page_size=page, delete_batch=batch),
        limits=replace(limits, max_image_bytes=most) if most != limits.max_image_bytes else limits,
        service=profile,
    )
