"""Config loading: the example configs, ``${ENV}`` interpolation, and one clear ConfigError per mistake."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import (
    DEFAULT_EXTENSIONS,
    EMBEDDED,
    EMBEDDED_KEY,
    EMBEDDED_SECRET,
    ApiConfig,
    Config,
    LimitsConfig,
    SourceConfig,
    StateConfig,
    Threshold,
    config_location,
    load_config,
    parse_config,
)
from pipeline.errors import EXIT_USAGE, ConfigError

CONFIGS = Path(__file__).parents[1] / "configs"
URL = "http://127.0.0.1:9/api/v2/face_search"
CREDS = {"base_url": URL, "api_key": "k", "api_secret": "s"}


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parse(data: object, tmp_path: Path) -> Config:
    return parse_config(data, origin=tmp_path / "c.yaml", base_dir=tmp_path)


def config_error(data: object, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data, tmp_path)
    assert info.value.exit_code == EXIT_USAGE
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'c.yaml'}: "), message
    assert "\n" not in message
    return message


# -- the example configs ----------------------------------------------------------------------------


def test_default_yaml_loads_the_embedded_emulator_with_demo_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(CONFIGS / "default.yaml")
    assert config == Config(
        api=ApiConfig(base_url=EMBEDDED, api_key=EMBEDDED_KEY, api_secret=EMBEDDED_SECRET),
        source=SourceConfig(path=CONFIGS / "../demo/archive"),  # relative to the file's folder
        state=StateConfig(path=CONFIGS / "../state/facesync.db"),
        limits=LimitsConfig(concurrency=8, max_delete=Threshold(25.0, percent=True)),
        metadata={},
        origin=CONFIGS / "default.yaml",
    )
    assert config.api.embedded


def test_relative_paths_follow_the_config_files_folder_from_any_working_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    etc = tmp_path / "etc" / "facesync"
    etc.mkdir(parents=True)
    (etc / "photos.yaml").write_text("source: {path: photos}\nstate: {path: state/photos.db}\n")
    elsewhere = tmp_path / "tmp"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(etc / "photos.yaml")
    assert (config.source.path, config.state.path, config.notes) == (
        etc / "photos",
        etc / "state/photos.db",
        (),
    )


def test_a_path_that_exists_only_relative_to_the_working_folder_still_works_with_a_note(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A config written when paths followed the working folder keeps working (a deprecation note)."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "archive").mkdir()
    (tmp_path / "configs" / "f.yaml").write_text("source: {path: archive}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("configs/f.yaml"))
    assert config.source.path == tmp_path / "archive"
    (note,) = config.notes
    assert "source.path" in note and "relative to the config file's folder" in note


def test_without_config_the_environment_then_the_users_config_then_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FACESYNC_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_location(None) == Path("configs/default.yaml")
    user = tmp_path / "xdg" / "facesync" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("{}\n")
    assert config_location(None) == user
    monkeypatch.setenv("FACESYNC_CONFIG", str(tmp_path / "env.yaml"))
    assert config_location(None) == tmp_path / "env.yaml"
    assert config_location(tmp_path / "given.yaml") == tmp_path / "given.yaml"


def test_cloud_yaml_loads_every_key_with_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACESYNC_API_KEY", "the-key")
    monkeypatch.setenv("FACESYNC_API_SECRET", "the-secret")
    config = load_config(CONFIGS / "cloud.yaml")
    assert config.api == ApiConfig(
        base_url="https://cloud.computervision.com.vn/api/v2/face_search",
        api_key="the-key",
        api_secret="the-secret",
        timeout=60.0,
        page_size=100,
        delete_batch=100,
    )
    assert config.source == SourceConfig(path=Path("/srv/photos"), exclude=("**/thumbnails/**",))
    assert config.state == StateConfig(path=CONFIGS / "state/photos.db")
    assert config.limits == LimitsConfig(
        concurrency=8,
        max_delete=Threshold(5.0, percent=True),
        max_missing=Threshold(50.0, percent=True),
        max_image_bytes=10485760,
        quota_wait=300.0,
        retries=5,
    )
    assert config.metadata == {}


def test_s3_yaml_loads_every_key_with_interpolated_manifest_and_region_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACESYNC_API_KEY", "the-key")
    monkeypatch.setenv("FACESYNC_API_SECRET", "the-secret")
    monkeypatch.setenv("INVENTORY_STAMP", "2024-05-01T01-00Z")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    config = load_config(CONFIGS / "s3.yaml")
    assert (config.api.api_key, config.api.api_secret) == ("the-key", "the-secret")
    assert config.source == SourceConfig(
        manifest="s3://acme-inventories/inventories/acme-photos/facesync-daily/2024-05-01T01-00Z/manifest.json",
        region="eu-west-1",
        extensions=(".jpg", ".jpeg", ".png", ".webp"),
        exclude=("**/thumbnails/**",),
    )
    assert config.state == StateConfig(path=CONFIGS / "state/acme-photos.db")
    assert config.limits == LimitsConfig(
        concurrency=8, max_delete=Threshold(5.0, percent=True), max_image_bytes=10485760
    )


def test_s3_yaml_takes_the_region_from_the_environment_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {"FACESYNC_API_KEY": "k", "FACESYNC_API_SECRET": "s", "INVENTORY_STAMP": "x"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-1")
    assert load_config(CONFIGS / "s3.yaml").source.region == "ap-southeast-1"


def test_an_empty_file_is_the_embedded_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "# nothing here\n"))
    assert config.api.embedded
    assert config.source == SourceConfig()
    assert config.source.extensions == DEFAULT_EXTENSIONS
    assert config.limits == LimitsConfig()


# -- ${VAR} and ${VAR:-default} ---------------------------------------------------------------------


def test_env_var_is_interpolated_inside_a_string(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FS_HOST", "10.0.0.5:8080")
    monkeypatch.setenv("FS_SECRET", "s3cr3t")
    config = parse(
        {"api": {"base_url": "http://${FS_HOST}/api", "api_key": "k", "api_secret": "${FS_SECRET}"}},
        tmp_path,
    )
    assert (config.api.base_url, config.api.api_secret) == ("http://10.0.0.5:8080/api", "s3cr3t")


def test_env_default_applies_when_the_variable_is_unset_or_empty(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FS_UNSET", raising=False)
    monkeypatch.setenv("FS_EMPTY", "")
    monkeypatch.setenv("FS_SET", "7")
    config = parse(
        {
            "source": {"path": "${FS_UNSET:-photos}", "region": "${FS_EMPTY:-eu-west-3}"},
            "limits": {"concurrency": "${FS_SET:-2}", "max_delete": "${FS_UNSET:-3%}"},
        },
        tmp_path,
    )
    assert config.source.path == tmp_path / "photos"
    assert config.source.region == "eu-west-3"
    assert config.limits.concurrency == 7
    assert config.limits.max_delete == Threshold(3.0, percent=True)


def test_env_interpolation_applies_to_list_items(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FS_SKIP", "**/tmp/**")
    config = parse({"source": {"exclude": ["${FS_SKIP}", "**/.git/**"]}}, tmp_path)
    assert config.source.exclude == ("**/tmp/**", "**/.git/**")


def test_an_unset_variable_is_an_error_naming_the_variable_and_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FS_NO_SUCH_SECRET", raising=False)
    message = config_error({"api": {**CREDS, "api_secret": "${FS_NO_SUCH_SECRET}"}}, tmp_path)
    assert "api.api_secret" in message
    assert "FS_NO_SUCH_SECRET" in message
    assert "not set" in message


# -- unknown keys, missing file, invalid YAML --------------------------------------------------------


def test_an_unknown_top_level_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  base_url: embedded\nlimit:\n  concurrency: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: limit: unknown key (did you mean 'limits'?)"


def test_an_unknown_key_with_no_near_match_lists_the_known_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  base_url: embedded\n  zzz: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert re.match(
        rf"^{re.escape(str(path))}: api.zzz: unknown key \(known keys: .*base_url", str(info.value)
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [("api", "secret"), ("source", "paths"), ("state", "file"), ("limits", "max_deletes")],
)
def test_an_unknown_nested_key_names_the_file_and_the_dotted_key(
    tmp_path: Path, section: str, key: str
) -> None:
    path = write(tmp_path, f"{section}:\n  {key}: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {section}.{key}: unknown key")


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: config file not found"
    assert info.value.exit_code == EXIT_USAGE


def test_a_directory_instead_of_a_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)


def test_invalid_yaml_is_a_config_error_with_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  base_url: embedded\nsource:\n  path: [unclosed\nstate: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not valid YAML (line ")
    assert "\n" not in message


def test_invalid_yaml_reports_the_line_of_the_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  base_url: embedded\n\tbad: tab\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line 3, column 1\)"):
        load_config(path)


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "- api\n- source\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: the top level must be a mapping, got list"


def test_a_section_that_is_not_a_mapping_is_refused_naming_it(tmp_path: Path) -> None:
    message = config_error({"limits": 8}, tmp_path)
    assert "'limits' must be a mapping" in message


# -- api ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["api_key", "api_secret"])
def test_a_url_without_credentials_is_an_error_naming_the_missing_key(tmp_path: Path, missing: str) -> None:
    api = {k: v for k, v in CREDS.items() if k != missing}
    message = config_error({"api": api}, tmp_path)
    assert f"api.{missing}: required when api.base_url is a URL" in message


def test_an_empty_secret_variable_counts_as_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FS_EMPTY_SECRET", "")
    message = config_error({"api": {**CREDS, "api_secret": "${FS_EMPTY_SECRET}"}}, tmp_path)
    assert "api.api_secret: required" in message


def test_base_url_must_be_a_url_or_embedded(tmp_path: Path) -> None:
    message = config_error({"api": {**CREDS, "base_url": "cloud.example.com/api"}}, tmp_path)
    assert "api.base_url: expected an http(s) URL or 'embedded'" in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:99999/api", "not a valid URL (Port out of range"),
        ("https://host:abc/api", "not a valid URL (Port could not be cast"),
        ("http:///api", "expected an http(s) URL"),
        ("ftp://host/api", "expected an http(s) URL"),
    ],
)
def test_a_malformed_base_url_is_a_config_error_not_a_crash_at_the_first_request(
    tmp_path: Path, url: str, problem: str
) -> None:
    assert f"api.base_url: {problem}" in config_error({"api": {**CREDS, "base_url": url}}, tmp_path)


def test_base_url_loses_its_trailing_slash(tmp_path: Path) -> None:
    assert parse({"api": {**CREDS, "base_url": URL + "/"}}, tmp_path).api.base_url == URL


def test_the_secret_never_appears_in_repr_or_str(tmp_path: Path) -> None:
    config = parse({"api": {**CREDS, "api_secret": "hunter2-very-secret"}}, tmp_path)
    assert config.api.api_secret == "hunter2-very-secret"
    for text in (repr(config), str(config), repr(config.api), str(config.api)):
        assert "hunter2-very-secret" not in text


def test_a_secret_of_the_wrong_type_is_refused_without_echoing_it(tmp_path: Path) -> None:
    message = config_error({"api": {**CREDS, "api_secret": ["hunter2-very-secret"]}}, tmp_path)
    assert "api.api_secret: expected text" in message
    assert "hunter2" not in message


# -- limits -------------------------------------------------------------------------------------------


def test_max_delete_as_a_count(tmp_path: Path) -> None:
    threshold = parse({"limits": {"max_delete": 10}}, tmp_path).limits.max_delete
    assert threshold == Threshold(10.0)
    assert [threshold.limit(total) for total in (0, 5, 1000)] == [10, 10, 10]
    assert str(threshold) == "10"


def test_max_delete_as_a_percentage_of_the_total(tmp_path: Path) -> None:
    threshold = parse({"limits": {"max_delete": "10%"}}, tmp_path).limits.max_delete
    assert threshold == Threshold(10.0, percent=True)
    assert [threshold.limit(total) for total in (0, 9, 10, 1000)] == [0, 0, 1, 100]
    assert threshold.allows(100, 1000) and not threshold.allows(101, 1000)
    assert str(threshold) == "10%"


def test_max_delete_as_a_quoted_count(tmp_path: Path) -> None:
    assert parse({"limits": {"max_delete": "25"}}, tmp_path).limits.max_delete == Threshold(25.0)


@pytest.mark.parametrize("bad", [-1, "-5", "150%", "ten", "%", True, 2.5, ".inf"])
def test_max_delete_refuses_what_is_not_a_count_or_percentage(tmp_path: Path, bad: object) -> None:
    value = float("inf") if bad == ".inf" else bad
    message = config_error({"limits": {"max_delete": value}}, tmp_path)
    assert "limits.max_delete: expected a count or a percentage like '10%'" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("concurrency", "many", "limits.concurrency: expected a whole number, got 'many'"),
        ("concurrency", 0, "limits.concurrency: expected a whole number >= 1, got 0"),
        ("concurrency", 2.5, "limits.concurrency: expected a whole number >= 1, got 2.5"),
        ("concurrency", True, "limits.concurrency: expected a whole number >= 1, got True"),
        ("concurrency", float("inf"), "limits.concurrency: expected a whole number, got inf"),
        ("rate", -1, "limits.rate: expected a number >= 0.001, got -1"),
        ("rate", "fast", "limits.rate: expected a number, got 'fast'"),
        ("rate", "nan", "limits.rate: expected a finite number >= 0.001, got 'nan'"),
        ("quota_wait", [1], "limits.quota_wait: expected a number, got [1]"),
        ("retries", -1, "limits.retries: expected a whole number >= 0, got -1"),
    ],
)
def test_bad_types_and_ranges_are_clear_errors(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    assert config_error({"limits": {key: value}}, tmp_path) == f"{tmp_path / 'c.yaml'}: {expected}"


def test_numbers_given_as_strings_are_accepted(tmp_path: Path) -> None:
    limits = parse({"limits": {"concurrency": "3", "rate": "2.5", "retries": "0"}}, tmp_path).limits
    assert (limits.concurrency, limits.rate, limits.retries) == (3, 2.5, 0)


def test_rate_unset_means_adaptive(tmp_path: Path) -> None:
    assert parse({"limits": {"concurrency": 2}}, tmp_path).limits.rate is None


def test_with_limits_changes_only_the_limits(tmp_path: Path) -> None:
    config = parse({"api": CREDS, "limits": {"retries": 5}}, tmp_path)
    changed = config.with_limits(retries=0)
    assert changed.limits.retries == 0
    assert changed.api == config.api
    assert config.limits.retries == 5


def test_api_numbers_are_checked(tmp_path: Path) -> None:
    message = config_error({"api": {**CREDS, "connect_timeout": 0}}, tmp_path)
    assert "api.connect_timeout: expected a number >= 0.001" in message
    message = config_error({"api": {**CREDS, "page_size": "x"}}, tmp_path)
    assert "api.page_size: expected a whole number" in message


# -- source, metadata ---------------------------------------------------------------------------------


def test_source_path_and_manifest_together_are_refused(tmp_path: Path) -> None:
    message = config_error({"source": {"path": "photos", "manifest": "keys.txt"}}, tmp_path)
    assert "source.path and source.manifest are exclusive" in message


def test_source_paths_are_resolved_and_s3_manifests_kept(tmp_path: Path) -> None:
    assert parse({"source": {"manifest": "inv/manifest.json"}}, tmp_path).source.manifest == str(
        tmp_path / "inv/manifest.json"
    )
    assert parse({"source": {"manifest": "s3://b/m.json"}}, tmp_path).source.manifest == "s3://b/m.json"


def test_extensions_are_normalised_to_lower_case_with_a_dot(tmp_path: Path) -> None:
    config = parse({"source": {"extensions": ["JPG", ".Png"]}}, tmp_path)
    assert config.source.extensions == (".jpg", ".png")


def test_follow_symlinks_must_be_a_boolean(tmp_path: Path) -> None:
    assert parse({"source": {"follow_symlinks": True}}, tmp_path).source.follow_symlinks is True
    message = config_error({"source": {"follow_symlinks": "sometimes"}}, tmp_path)
    assert "source.follow_symlinks: expected true or false" in message


def test_metadata_templates_are_kept_as_text(tmp_path: Path) -> None:
    config = parse({"metadata": {"album": "{album}", "year": 2024}}, tmp_path)
    assert config.metadata == {"album": "{album}", "year": "2024"}


@pytest.mark.parametrize("key", ["user", "encoding", "_id", "facesync_token", "facesync_key"])
def test_reserved_metadata_keys_are_refused(tmp_path: Path, key: str) -> None:
    message = config_error({"metadata": {key: "{name}"}}, tmp_path)
    assert f"metadata.{key}: '{key}' is reserved" in message


def test_a_metadata_value_that_is_not_text_is_refused(tmp_path: Path) -> None:
    assert "metadata.tags: expected a text template" in config_error({"metadata": {"tags": ["a"]}}, tmp_path)


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("{nope}", "unknown field {nope}"),
        ("{name} {parent}", None),
        ("{stem.upper}", "unknown field {stem.upper}"),  # Python's attribute access is not a field
        ("{size:>08d}", None),
        ("{name:d}", "bad template"),  # a str field with an int spec fails when rendered
        ("{", "bad template"),
        ("{}", "unknown field {}"),
    ],
)
def test_a_metadata_template_is_checked_when_the_config_is_loaded(
    tmp_path: Path, template: str, said: str | None
) -> None:
    if said is None:
        assert parse({"metadata": {"title": template}}, tmp_path).metadata == {"title": template}
        return
    message = config_error({"metadata": {"title": template}}, tmp_path)
    assert message.startswith(f"{tmp_path / 'c.yaml'}: metadata.title: {said}"), message
    assert "{album}" in message or "bad template" in message  # the known fields are named


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", ["check", "sync"])
def test_a_bad_template_fails_check_and_sync_before_any_state_is_made(tmp_path: Path, command: str) -> None:
    (tmp_path / "archive").mkdir()
    state = tmp_path / "state" / "facesync.db"
    config = write(
        tmp_path,
        f"source:\n  path: {tmp_path / 'archive'}\nstate:\n  path: {state}\nmetadata:\n  title: '{{nope}}'\n",
    )

    done = _cli(tmp_path, "--config", str(config), command)

    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr.splitlines()[0].startswith(f"facesync: error: {config}: metadata.title: unknown field")
    assert not state.parent.exists()  # no lock, no state DB, no emulator folder


def test_a_config_without_a_source_names_its_file_when_sync_needs_one(tmp_path: Path) -> None:
    config = write(tmp_path, "# an empty config: the embedded emulator, but no source\n")

    done = _cli(tmp_path, "--config", str(config), "sync")

    assert done.returncode == EXIT_USAGE
    assert done.stderr.splitlines() == [
        f"facesync: error: {config}: source: give source.path (a directory) or source.manifest "
        "(an S3 manifest)"
    ]
    assert not (tmp_path / "state").exists()
