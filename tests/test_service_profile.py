"""The service profile: its file (written, read back, refused when wrong), where the config finds it,
what it changes in the config, and what the emulator plays from it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.commands.check import profile_note
from pipeline.config import ApiConfig, Config, LimitsConfig, StateConfig, load_config, parse_config
from pipeline.config.profile import (
    ServiceProfile,
    applied,
    body_for_image,
    image_for_body,
    read_profile,
    write_profile,
)
from pipeline.emulator import EmulatorSettings
from pipeline.emulator.profile import played, settings_for
from pipeline.errors import EXIT_USAGE, ConfigError

URL = "http://127.0.0.1:9/api/v2/face_search"
MEASURED = ServiceProfile(
    endpoint=URL,
    measured_at=1_700_000_000.0,
    requests=21,
    id_field="_id",
    id_kind="str",
    auth_http_status=200,
    refusal_http_status=200,
    page_cap=50,
    page_seen=50,
    list_order="newest_first",
    list_metadata=True,
    delete_cap=25,
    delete_tried=1000,
    delete_unknown="fail",
    dedup=True,
    max_body_bytes=1 << 20,
    body_refused=(1 << 20) + 1,
)


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_profile_written_reads_back_equal_and_is_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "state" / "service-profile.json"

    write_profile(path, MEASURED)

    assert read_profile(path) == MEASURED
    assert json.loads(path.read_text())["version"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["service-profile.json"]  # no temp file left


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"version": 2}, "service profile version 2, expected 1"),
        ({"colour": "blue"}, "unknown field 'colour'"),
        ({"id_kind": "float"}, "id_kind: expected one of 'int', 'str'"),
        ({"page_cap": 0}, "page_cap: expected a whole number >= 1"),
        ({"auth_http_status": 999}, "auth_http_status: expected an HTTP status"),
        ({"dedup": "yes"}, "dedup: expected true, false or null"),
        ({"endpoint": None}, "endpoint: expected the endpoint's URL or 'embedded'"),
    ],
)
def test_a_wrong_profile_is_one_config_error_naming_the_file_and_the_field(
    tmp_path: Path, change: dict[str, Any], said: str
) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(MEASURED.to_json() | change))

    with pytest.raises(ConfigError) as info:
        read_profile(path)

    assert info.value.exit_code == EXIT_USAGE
    assert str(info.value).startswith(f"{path}: {said}"), str(info.value)


def test_a_profile_that_is_not_json_or_not_there_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not JSON"):
        read_profile(tmp_path / "p.json")
    with pytest.raises(ConfigError, match=r"not found \(`facesync probe` writes one\)"):
        read_profile(tmp_path / "none.json")


def test_defaults_follow_the_service_and_values_set_otherwise_stay_within_its_caps() -> None:
    config = Config(
        api=ApiConfig(base_url=URL, delete_batch=500), limits=LimitsConfig(max_image_bytes=5 << 20)
    )

    now = applied(config, MEASURED)

    assert now.api == replace(config.api, page_size=50, delete_batch=25)
    assert now.limits == replace(config.limits, max_image_bytes=image_for_body(1 << 20))
    assert (
        body_for_image(now.limits.max_image_bytes) <= 1 << 20 < body_for_image(now.limits.max_image_bytes + 3)
    )
    assert now.service == MEASURED


def test_questions_left_open_change_nothing() -> None:
    config = Config(api=ApiConfig(base_url=URL))
    open_ = ServiceProfile(
        endpoint=URL, measured_at=0.0, page_seen=3, delete_tried=1000, max_body_bytes=10**8
    )

    assert applied(config, open_) == replace(config, service=open_)


def test_the_profile_beside_the_state_applies_only_to_the_endpoint_it_was_measured_at(tmp_path: Path) -> None:
    state = tmp_path / "state" / "facesync.db"
    write_profile(state.parent / "service-profile.json", MEASURED)
    here = f"api: {{base_url: {URL}, api_key: k, api_secret: s}}\nstate: {{path: {state}}}\n"
    elsewhere = here.replace("127.0.0.1:9", "127.0.0.1:10")

    assert load_config(write_yaml(tmp_path, here)).service == MEASURED
    assert load_config(write_yaml(tmp_path, here)).api.page_size == 50
    assert load_config(write_yaml(tmp_path, elsewhere)).service is None


def test_api_profile_applies_whatever_the_endpoint_and_must_exist(tmp_path: Path) -> None:
    write_profile(tmp_path / "measured.json", replace(MEASURED, endpoint="embedded"))
    text = f"api: {{base_url: {URL}, api_key: k, api_secret: s, profile: {tmp_path / '%s'}}}\n"

    assert load_config(write_yaml(tmp_path, text % "measured.json")).api.delete_batch == 25
    with pytest.raises(ConfigError, match=r"missing\.json: service profile not found"):
        load_config(write_yaml(tmp_path, text % "missing.json"))


def test_emulator_profile_is_parsed_relative_to_the_config_and_checked_when_loaded(tmp_path: Path) -> None:
    parsed = parse_config({"emulator": {"profile": "p.json"}}, origin=tmp_path / "c.yaml", base_dir=tmp_path)
    assert parsed.emulator.profile == tmp_path / "p.json"

    (tmp_path / "p.json").write_text("[]")
    text = f"emulator: {{profile: {tmp_path / 'p.json'}}}\nstate: {{path: {tmp_path}/s.db}}\n"
    with pytest.raises(ConfigError, match=r"p\.json: not a service profile"):
        load_config(write_yaml(tmp_path, text))
    with pytest.raises(ConfigError, match=r"emulator\.colour: unknown key"):
        parse_config({"emulator": {"colour": 1}})


def test_the_emulator_plays_every_answer_and_keeps_its_defaults_for_the_open_questions() -> None:
    assert played(settings_for(MEASURED)) == {
        "id_kind": "str",
        "add_id_field": "_id",
        "auth_http_status": 200,
        "refusal_http_status": 200,
        "throttle_http_status": 429,
        "page_cap": 50,
        "list_order": "newest_first",
        "list_metadata": True,
        "delete_cap": 25,
        "delete_unknown": "fail",
        "dedup": True,
        "max_body_bytes": 1 << 20,
    }
    assert settings_for(ServiceProfile(endpoint=URL, measured_at=0.0)) == EmulatorSettings()
    base = EmulatorSettings(api_key="k", rate_limit=5)
    assert (settings_for(MEASURED, base).api_key, settings_for(MEASURED, base).rate_limit) == ("k", 5)


def test_a_status_the_emulator_has_no_knob_value_for_cannot_be_played() -> None:
    with pytest.raises(ValueError, match="auth_http_status: expected one of 200, 401, 403"):
        settings_for(replace(MEASURED, auth_http_status=418))


def test_check_says_when_no_profile_was_measured_here_and_when_one_rules_adopting_out(tmp_path: Path) -> None:
    config = Config(api=ApiConfig(base_url=URL), state=StateConfig(tmp_path / "facesync.db"))

    assert profile_note(applied(config, MEASURED)) is None
    assert "reconcile cannot adopt" in (
        profile_note(applied(config, replace(MEASURED, list_metadata=False))) or ""
    )
    assert profile_note(config) == (
        f"no service profile measured for {URL} yet: `facesync probe` measures page size, delete cap, ids "
        "and more in about 20 requests"
    )
    write_profile(tmp_path / "service-profile.json", replace(MEASURED, endpoint="embedded"))
    assert f"yet (the one at {tmp_path / 'service-profile.json'} is of embedded)" in (
        profile_note(config) or ""
    )
