"""The check of a ``metadata:`` template: every field it names known, every format spec valid.

Run at config load (:mod:`pipeline.config.parse`, exit 2 before anything is sent) and again when a
:class:`~pipeline.engine.metadata.MetadataBuilder` is made, so the two can never disagree on what a
template may name.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Collection, Mapping
from typing import Any

from pipeline.config.model import PHOTO_FIELDS, TEMPLATE_FIELDS, FieldText
from pipeline.errors import ConfigError


def check_template(
    template: Mapping[str, str],
    where: Callable[[str], str] = "metadata.{}".format,
    table: Collection[str] = (),
) -> None:
    """Refuse a ``metadata:`` template that names an unknown field or is malformed (exit 2 at load).

    ``where(key)`` names the key in the message (the file and ``metadata.<key>``); ``table`` is the
    fields ``metadata_table`` adds. The template is also rendered once with sample values, so a bad
    format spec is found here and not mid-run.
    """
    sample: dict[str, Any] = {name: "x" for name in TEMPLATE_FIELDS} | {"size": 0}
    sample |= {name: FieldText("x") for name in (*PHOTO_FIELDS, *table)}
    fields = (*TEMPLATE_FIELDS, *(f for f in table if f not in TEMPLATE_FIELDS))
    known = ", ".join("{" + k + "}" for k in fields)
    for name, text in template.items():
        try:
            used = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        except ValueError as exc:
            raise ConfigError(f"{where(name)}: bad template {text!r}: {exc}") from None
        for f in used:
            if f not in fields:
                raise ConfigError(f"{where(name)}: unknown field {{{f}}} in {text!r} (known: {known})")
        try:
            text.format(**sample)
        except (ValueError, IndexError, KeyError, AttributeError, TypeError) as exc:
            raise ConfigError(f"{where(name)}: bad template {text!r}: {exc}") from None
