"""The walk over one section of a parsed config: names and types checked, ``${ENV_VAR}`` filled in, paths
resolved against the config file's folder.

:mod:`pipeline.config.parse` builds each section's values with a :class:`Reader` and a :class:`Resolver`;
both remember where they are, so that every problem is a :class:`~pipeline.errors.ConfigError` naming
the file and the key. Nothing here reads a file: the YAML is read in ``parse.py`` alone.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

#: ``${NAME}`` or ``${NAME:-default}`` in a string value.
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: str, where: str) -> str:
    """``value`` with each ``${NAME}`` taken from the environment (``${NAME:-default}``: the default when
    it is unset or empty); ConfigError naming ``where`` for one unset without a default."""

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is None or (found == "" and default is not None):
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return found

    return _ENV.sub(sub, value)


class Reader:
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
                import difflib  # only for the message: a config without a typo does not load it

                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
                raise ConfigError(f"{self.where(str(key))}: unknown key ({hint})")

    def get(self, key: str) -> Any:
        value = self.raw.get(key)
        if isinstance(value, str):
            value = interpolate(value, self.where(key))
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
        return tuple(interpolate(v, self.where(key)) for v in value)


class Resolver:
    """Relative paths of a config, against the config file's folder. A path that exists only against the
    working folder (a config written when that was the rule) is taken from there, with a note."""

    def __init__(self, base: Path, legacy: Path | None, where: str) -> None:
        self.base, self.legacy, self.where = base, legacy, where
        self.notes: list[str] = []

    def __call__(self, value: str, key: str) -> Path:
        path = Path(os.path.expanduser(value))
        if path.is_absolute():
            return path
        found = self.base / path
        if self.legacy is not None and not found.exists() and (old := self.legacy / path).exists():
            self.notes.append(
                f"{self.where}: {key} {value!r} is found relative to the working folder ({old}); relative "
                f"paths are now relative to the config file's folder: write {str(old.resolve())!r} instead"
            )
            return old
        return found
