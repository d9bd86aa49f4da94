"""A service profile played by the emulator: ``facesync serve --profile FILE`` and ``emulator.profile``.

The probe measures a service (``pipeline/commands/probe.py``) and writes a :class:`ServiceProfile`;
:func:`settings_for` turns it into the emulator's knobs, so users' tests and ours run against the
service they actually have. A question the probe left open keeps the emulator's default. The round
trip — probe an emulator, play the profile, get the same knobs back — is ``tests/test_probe.py``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipeline.config.profile import ServiceProfile
from pipeline.emulator.settings import EmulatorSettings, validate_changes

#: The knobs a profile sets, each from the profile field of the same name unless mapped here.
PLAYED = (
    "id_kind",
    "add_id_field",
    "auth_http_status",
    "refusal_http_status",
    "throttle_http_status",
    "page_cap",
    "list_order",
    "list_metadata",
    "delete_cap",
    "delete_unknown",
    "dedup",
    "max_body_bytes",
)


def changes_for(profile: ServiceProfile) -> dict[str, Any]:
    """The knob changes that make the emulator behave as ``profile`` says (answered questions only)."""
    wanted: dict[str, Any] = {
        "id_kind": profile.id_kind,
        "add_id_field": profile.id_field,
        "auth_http_status": profile.auth_http_status,
        "refusal_http_status": profile.refusal_http_status,
        "throttle_http_status": profile.throttle_http_status,
        "page_cap": profile.page_cap,
        "list_order": profile.list_order,
        "list_metadata": profile.list_metadata,
        "delete_cap": profile.delete_cap,
        "delete_unknown": profile.delete_unknown,
        "dedup": profile.dedup,
        # A body limit only when one was met: "accepted up to X" says nothing of a limit.
        "max_body_bytes": profile.max_body_bytes if profile.body_refused is not None else None,
    }
    return validate_changes({k: v for k, v in wanted.items() if v is not None})


def settings_for(profile: ServiceProfile, base: EmulatorSettings | None = None) -> EmulatorSettings:
    """``base`` (default: a fresh emulator's settings) with ``profile``'s answers; ValueError when the
    profile holds a value the emulator cannot play (an HTTP status it has no knob value for)."""
    return replace(base if base is not None else EmulatorSettings(), **changes_for(profile))


def played(settings: EmulatorSettings) -> dict[str, Any]:
    """The knobs of ``settings`` a profile can set: what a round trip must give back."""
    return {name: getattr(settings, name) for name in PLAYED}
