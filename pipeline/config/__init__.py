"""Typed, frozen configuration (:mod:`~pipeline.config.model`), read and checked from YAML in one place
(:mod:`~pipeline.config.parse`)."""

from pipeline.config.model import (
    DEFAULT_BASE_URL,
    DEFAULT_CONFIG_PATH,
    DEFAULT_EXTENSIONS,
    EMBEDDED,
    EMBEDDED_KEY,
    EMBEDDED_SECRET,
    KEY_FIELD,
    OWN_FIELDS,
    RESERVED_METADATA_KEYS,
    SHA_FIELD,
    TEMPLATE_FIELDS,
    TOKEN_FIELD,
    ApiConfig,
    Config,
    LimitsConfig,
    SourceConfig,
    StateConfig,
    Threshold,
)
from pipeline.config.parse import check_template, load_config, parse_config

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_EXTENSIONS",
    "EMBEDDED",
    "EMBEDDED_KEY",
    "EMBEDDED_SECRET",
    "KEY_FIELD",
    "OWN_FIELDS",
    "RESERVED_METADATA_KEYS",
    "SHA_FIELD",
    "TEMPLATE_FIELDS",
    "TOKEN_FIELD",
    "ApiConfig",
    "Config",
    "LimitsConfig",
    "SourceConfig",
    "StateConfig",
    "Threshold",
    "check_template",
    "load_config",
    "parse_config",
]
