"""``facesync probe`` and ``serve --profile`` as users run them: real processes, the real emulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pipeline.config.profile import read_profile
from pipeline.emulator import EmulatorThread
from pipeline.emulator.profile import played, settings_for
from pipeline.errors import EXIT_AUTH, EXIT_OK, EXIT_USAGE
from tests.helpers import config_data, write_config_file
from tests.imagefactory import make_jpeg
from tests.test_cli import run, the_error_line
from tests.test_probe import foreign

PROBE_JSON_FIELDS = {
    "endpoint", "profile_path", "written", "profile", "requests", "image", "probe_images",
    "leftovers_found", "skipped", "notes", "error", "exit_code",
}  # fmt: skip


def write_config(tmp_path: Path, base_url: str, **limits: object) -> Path:
    make_jpeg(tmp_path / "archive" / "face.jpg", 5)
    data = config_data(base_url, tmp_path, state=tmp_path / "state" / "facesync.db", limits=limits)
    return write_config_file(tmp_path / "facesync.yaml", data)


def test_probe_of_the_embedded_emulator_works_as_a_first_try_and_check_then_says_nothing_more(
    tmp_path: Path,
) -> None:
    """No archive, no account: the probe draws its picture, prints its table, writes the profile."""
    (tmp_path / "facesync.yaml").write_text("api: {base_url: embedded}\n")

    done = run(tmp_path, "--config", "facesync.yaml", "probe", "--yes")

    assert done.returncode == EXIT_OK, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("facesync: probe of embedded: ") and "a drawn picture" in lines[0]
    assert lines[1].split() == ["question", "seen", "what", "facesync", "does"]
    last_row = r"^  probe's images +2 added, 2 deleted +none left \(listing checked\)$"
    assert re.search(last_row, done.stderr, re.M)
    assert lines[-1] == f"facesync: profile written to {tmp_path / 'state' / 'service-profile.json'}"
    assert read_profile(tmp_path / "state" / "service-profile.json").endpoint == "embedded"
    (tmp_path / "facesync.yaml").write_text("api: {base_url: embedded}\nsource: {path: archive}\n")
    make_jpeg(tmp_path / "archive" / "face.jpg", 5)
    checked = run(tmp_path, "--config", "facesync.yaml", "check")
    assert checked.returncode == EXIT_OK, checked.stderr
    assert checked.stderr.splitlines()[-1] == "facesync: OK: embedded answered; 0 image(s) on the first page"
    assert "note:" not in checked.stderr  # the profile is measured: nothing more to say


def test_probe_json_says_what_it_found_and_that_its_images_are_gone(
    tmp_path: Path, emulator: EmulatorThread
) -> None:
    emulator.configure(page_cap=4, delete_cap=3)
    emulator.seed(9, foreign)
    before = emulator.images()
    config = write_config(tmp_path, emulator.base_url, rate=1000)

    done = run(tmp_path, "--config", config.name, "probe", "--yes", "--json")

    assert done.returncode == EXIT_OK, done.stderr
    answer = json.loads(done.stdout)
    assert set(answer) == PROBE_JSON_FIELDS
    assert answer["probe_images"] == {"added": 2, "removed": 2, "left": [], "verified": True}
    assert (answer["profile"]["page_cap"], answer["profile"]["delete_cap"]) == (4, 3)
    assert (answer["written"], answer["image"], answer["exit_code"]) == (True, "archive: face.jpg", 0)
    assert emulator.images() == before


def test_probe_off_a_terminal_without_yes_asks_nothing_and_stores_nothing(
    tmp_path: Path, emulator: EmulatorThread
) -> None:
    config = write_config(tmp_path, emulator.base_url, rate=1000)

    done = run(tmp_path, "--config", config.name, "probe")

    assert done.returncode == EXIT_OK, done.stderr
    assert "facesync: note: not confirmed: run with --yes" in done.stderr
    assert {r.method for r in emulator.requests()} == {"GET", "POST"}
    assert [r.path for r in emulator.requests() if r.method == "POST"] == ["/api/v2/face_search/search"]


def test_runs_page_and_delete_as_the_measured_profile_says(tmp_path: Path, emulator: EmulatorThread) -> None:
    """After a probe, reconcile asks for pages of the cap (not the default 100) and deletes in batches
    of the cap: 10 orphans in DELETEs of 3, 3, 3, 1 — none refused and halved."""
    emulator.configure(page_cap=7, delete_cap=3)
    emulator.seed(10, foreign)
    config = write_config(tmp_path, emulator.base_url, rate=1000)
    assert run(tmp_path, "--config", config.name, "probe", "--yes").returncode == EXIT_OK
    emulator.call(lambda e: e._log.clear())

    done = run(tmp_path, "--config", config.name, "reconcile", "--max-delete", "10", "--json")

    assert json.loads(done.stdout)["deleted"] == 10, done.stderr
    calls = emulator.requests()
    assert {r.query.split("&")[1] for r in calls if r.method == "GET"} == {"limit=7"}
    assert [r.outcome for r in calls if r.method == "DELETE"] == ["ok"] * 4


def test_probe_help_lists_its_exit_codes(tmp_path: Path) -> None:
    result = run(tmp_path, "probe", "--help")
    assert result.returncode == 0
    assert "--image" in result.stdout and "--yes" in result.stdout and "--json" in result.stdout
    assert "75  another probe holds this profile" in result.stdout


def test_serve_plays_the_profile_it_is_given(tmp_path: Path, emulator: EmulatorThread) -> None:
    emulator.configure(id_kind="str", page_cap=5, delete_cap=20, list_order="newest_first", dedup=True)
    emulator.seed(8, foreign)
    config = write_config(tmp_path, emulator.base_url, rate=1000)
    assert run(tmp_path, "--config", config.name, "probe", "--yes").returncode == EXIT_OK
    profile = tmp_path / "state" / "service-profile.json"

    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--port", "0", "--data", str(tmp_path / "serve"),
         "--profile", str(profile)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stderr.readline() if server.stderr else ""
        base = line.split("serving ", 1)[1].split(" ", 1)[0]
        root = base.split("/api/", 1)[0]
        with urllib.request.urlopen(f"{root}/_emulator/settings", timeout=10) as answer:
            settings = json.load(answer)
    finally:
        server.kill()
        server.wait(10)
        if server.stderr:
            server.stderr.close()

    expected = played(settings_for(read_profile(profile)))
    assert {k: settings[k] for k in expected} == expected
    assert (settings["id_kind"], settings["page_cap"], settings["delete_cap"]) == ("str", 5, 20)


@pytest.mark.parametrize(
    "content", [None, "{}", '{"version": 1, "endpoint": "x", "measured_at": 0, "auth_http_status": 418}']
)
def test_serve_with_a_profile_it_cannot_play_exits_2_in_one_line(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "p.json").write_text(content)

    done = run(tmp_path, "serve", "--port", "0", "--profile", "p.json")

    assert done.returncode == EXIT_USAGE
    assert the_error_line(done).startswith("facesync: error: p.json: ")


def test_probe_with_a_wrong_secret_exits_3_in_one_line_and_writes_no_profile(
    tmp_path: Path, emulator: EmulatorThread
) -> None:
    config = write_config(tmp_path, emulator.base_url, rate=1000)
    config.write_text(config.read_text().replace("demo-secret", "not-the-secret"))

    done = run(tmp_path, "--config", config.name, "probe", "--yes")

    assert done.returncode == EXIT_AUTH
    assert "check api.api_key and api.api_secret" in the_error_line(done)
    assert not (tmp_path / "state" / "service-profile.json").exists()
    assert [r.outcome for r in emulator.requests()] == ["auth", "auth"]
