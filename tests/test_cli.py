"""The command line as scripts and cron jobs see it: real subprocesses, the real emulator, real files.

Each test spawns one or two processes (~0.5 s each); state is prepared in-process where that is faster.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.emulator import EmulatorThread
from pipeline.errors import EXIT_AUTH, EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE
from pipeline.state.lock import LockInfo, StateLock, lock_path
from tests.helpers import config_data, sync, write_config_file

FACESYNC_SCRIPT = Path(sys.executable).with_name("facesync")
SYNC_JSON_FIELDS = {
    "added", "replaced", "removed", "unchanged", "rejected", "skipped",
    "failed", "pending", "requests", "throttled", "elapsed", "exit_code",
}  # fmt: skip
UNSET_VAR = "FACESYNC_TEST_SURELY_UNSET_SECRET"
KEYS = ["album a/one.jpg", 'album a/two, "quoted".jpg', "b/three.png"]


def run(cwd: Path, *args: str, script: bool = False, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` (or the ``facesync`` console script) in ``cwd``, output captured."""
    command = [str(FACESYNC_SCRIPT)] if script else [sys.executable, "-m", "pipeline"]
    env = {k: v for k, v in os.environ.items() if k != UNSET_VAR}
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command prints: nothing on stdout, no traceback, one ``facesync: error:``."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("facesync: error: ")
    return lines[0]


def write_config(
    tmp_path: Path,
    base_url: str,
    *,
    name: str = "facesync.yaml",
    api: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
) -> Path:
    data = config_data(
        base_url,
        tmp_path,
        state=tmp_path / "state" / "facesync.db",
        api=api,
        limits={"concurrency": 2, **(limits or {})},
    )
    return write_config_file(tmp_path / name, data)


@pytest.fixture
def archive(make_image: Callable[..., Path], tmp_path: Path) -> Path:
    """Three valid images under ``tmp_path/archive`` (one key with a comma and quotes) and one text file."""
    for seed, key in enumerate(KEYS):
        make_image(f"archive/{key}", seed=seed)
    (tmp_path / "archive" / "notes.jpg").write_text("not an image")
    return tmp_path / "archive"


@pytest.fixture
def config_path(tmp_path: Path, emulator: EmulatorThread, archive: Path) -> Path:
    return write_config(tmp_path, emulator.base_url)


@pytest.fixture
def synced(config_path: Path) -> Path:
    """The config after one in-process sync: three rows synced, one skipped."""
    report, _ = asyncio.run(sync(load_config(config_path)))
    assert (report.added, report.exit_code) == (3, EXIT_OK)
    return config_path


# -- help ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["sync"], ["reconcile"], ["watch"]])
def test_help_of_the_group_and_each_command_lists_the_contract_exit_codes(
    tmp_path: Path, command: list[str]
) -> None:
    result = run(tmp_path, *command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: facesync {' '.join(command)}".rstrip())
    for code, meaning in [("0", "in step"), ("2", "usage or config error"), ("3", "bad credentials"),
                          ("4", "quota spent"), ("5", "max-delete guard"), ("75", "state lock")]:  # fmt: skip
        assert re.search(rf"^\s+{code}\s+.*{meaning}", result.stdout, re.M), (code, result.stdout)


@pytest.mark.parametrize(
    ("command", "codes"),
    [
        (["status"], {"0", "2"}),
        (["ls"], {"0", "2"}),
        (["report"], {"0", "2"}),
        (["retry"], {"0", "2", "75"}),
        (["search"], {"0", "1", "2", "3", "4"}),
    ],
)
def test_help_of_a_command_that_runs_no_sync_lists_only_the_exit_codes_it_gives(
    tmp_path: Path, command: list[str], codes: set[str]
) -> None:
    result = run(tmp_path, *command, "--help")
    assert result.returncode == 0
    listed = result.stdout.split("Exit codes:")[1]
    assert set(re.findall(r"^\s+(\d+)\s", listed, re.M)) == codes, listed
    assert "max-delete" not in listed and "deadline" not in listed


def test_help_of_check_lists_its_exit_codes(tmp_path: Path) -> None:
    result = run(tmp_path, "check", "--help")
    assert result.returncode == 0
    for code, meaning in [
        ("0", "ready"),
        ("1", "unreachable"),
        ("2", "config error"),
        ("3", "bad credentials"),
        ("5", "empty"),
    ]:
        assert re.search(rf"^\s+{code}\s+.*{meaning}", result.stdout, re.M), (code, result.stdout)


def test_serve_help_describes_the_standalone_emulator(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: facesync serve")
    assert "emulator" in result.stdout and "--port" in result.stdout


# -- config errors: one line, exit 2 ------------------------------------------------------------------


def test_a_missing_config_file_is_one_line_naming_it_and_exit_2(tmp_path: Path) -> None:
    result = run(tmp_path, "--config", "nope.yaml", "sync")
    assert result.returncode == EXIT_USAGE
    assert the_error_line(result) == "facesync: error: nope.yaml: config file not found"


def test_an_unknown_config_key_is_one_line_naming_the_file_and_the_key_and_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9/api", limits={"max_deletes": 3})
    result = run(tmp_path, "--config", path.name, "sync", "--json")
    assert result.returncode == EXIT_USAGE
    assert the_error_line(result).startswith(f"facesync: error: {path.name}: limits.max_deletes: unknown key")


def test_an_unset_secret_variable_is_one_line_naming_the_key_and_the_variable_and_exit_2(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9/api", api={"api_secret": f"${{{UNSET_VAR}}}"})
    result = run(tmp_path, "--config", path.name, "sync")
    assert result.returncode == EXIT_USAGE
    expected = f"facesync: error: {path.name}: api.api_secret: environment variable {UNSET_VAR} is not set"
    assert the_error_line(result) == expected


# -- the --json outputs ---------------------------------------------------------------------------------


def test_sync_json_prints_exactly_one_object_with_the_contract_fields(config_path: Path) -> None:
    result = run(config_path.parent, "--config", config_path.name, "sync", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    assert len(result.stdout.splitlines()) == 1
    report = json.loads(result.stdout)
    assert set(report) >= SYNC_JSON_FIELDS
    assert (report["added"], report["failed"], report["pending"], report["exit_code"]) == (3, 0, 0, 0)
    assert sum(report["skipped"].values()) == 1
    assert report["requests"] == 4  # the first-upload check's listing page, then 3 adds


def test_under_cron_sync_prints_plain_lines_and_no_progress_bar_escape_codes(config_path: Path) -> None:
    result = run(config_path.parent, "--config", config_path.name, "sync")
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == ""
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("facesync: sync: added 3,")


def test_status_json_through_the_console_script(synced: Path, emulator: EmulatorThread) -> None:
    result = run(synced.parent, "--config", synced.name, "status", "--json", script=True)
    assert result.returncode == EXIT_OK, result.stderr
    assert len(result.stdout.splitlines()) == 1
    info = json.loads(result.stdout)
    assert (info["total"], info["api"]) == (4, emulator.base_url)
    assert {name: n for name, n in info["counts"].items() if n} == {"synced": 3, "skipped": 1}
    assert info["state"] == str(synced.parent / "state" / "facesync.db")
    assert [run["command"] for run in info["last_runs"]] == ["sync"]


def test_ls_json_prints_one_object_per_row(synced: Path, emulator: EmulatorThread) -> None:
    result = run(synced.parent, "--config", synced.name, "ls", "--json", "--status", "synced")
    assert result.returncode == EXIT_OK, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["key"] for row in rows] == sorted(KEYS)
    assert {row["status"] for row in rows} == {"synced"}
    assert sorted(str(row["remote_id"]) for row in rows) == sorted(str(i.id) for i in emulator.images())


def test_ls_csv_parses_with_the_csv_module_even_for_awkward_keys(synced: Path) -> None:
    result = run(synced.parent, "--config", synced.name, "ls", "--format", "csv")
    assert result.returncode == EXIT_OK, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["key", "status", "remote_id", "size", "code", "message", "sha256"]
    assert sorted((row["key"], row["status"]) for row in rows) == sorted(
        [(key, "synced") for key in KEYS] + [("notes.jpg", "skipped")]
    )


# -- the failures a script must tell apart ----------------------------------------------------------------


def test_a_wrong_secret_exits_3_with_one_clear_line_and_never_prints_the_secret(
    tmp_path: Path, emulator: EmulatorThread, archive: Path
) -> None:
    path = write_config(tmp_path, emulator.base_url, api={"api_secret": "wrong-secret-4711"})
    result = run(tmp_path, "--config", path.name, "sync")
    assert result.returncode == EXIT_AUTH
    assert "wrong-secret-4711" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("facesync: error: ")]
    assert len(errors) == 1
    assert "check api.api_key and api.api_secret" in errors[0]


def test_a_second_run_on_a_locked_state_exits_75_at_once_naming_the_holder(config_path: Path) -> None:
    """At once by order, not by the clock: the run ends while this test still holds the lock, which it
    lets go only afterwards; a run that waited for the holder would hang until ``run``'s timeout."""
    db = config_path.parent / "state" / "facesync.db"
    with StateLock(db, command="sync"):
        result = run(config_path.parent, "--config", config_path.name, "sync", "--json")
        holder = LockInfo.parse(lock_path(db).read_text())
    assert result.returncode == EXIT_LOCKED
    line = the_error_line(result)
    assert f"is locked by pid {os.getpid()} on {socket.gethostname()}" in line
    assert "(sync)" in line
    assert holder is not None and holder.pid == os.getpid(), "the refused run took the lock file over"


def test_a_corrupt_state_file_exits_2_with_one_line_and_is_left_untouched(config_path: Path) -> None:
    db = config_path.parent / "state" / "facesync.db"
    db.parent.mkdir()
    garbage = bytes(range(256)) * 16
    db.write_bytes(garbage)
    result = run(config_path.parent, "--config", config_path.name, "sync")
    assert result.returncode == EXIT_USAGE
    assert the_error_line(result) == (
        f"facesync: error: state {db}: not an SQLite database (refusing to touch it)"
    )
    assert db.read_bytes() == garbage
    assert sorted(p.name for p in db.parent.iterdir()) == ["facesync.db", "facesync.db.lock"]


# -- facesync check ---------------------------------------------------------------------------------------


def test_check_says_ok_with_the_endpoint_and_the_images_on_the_first_page(
    synced: Path, emulator: EmulatorThread
) -> None:
    result = run(synced.parent, "--config", synced.name, "check")
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"facesync: config {synced.name}",
        f"facesync: OK: source {synced.parent / 'archive'}: readable, holds files to send",
        f"facesync: OK: state {synced.parent / 'state' / 'facesync.db'}: present, 3 file(s) synced",
        f"facesync: OK: {emulator.base_url} answered; 1 image(s) on the first page",
        f"facesync: note: no service profile measured for {emulator.base_url} yet: `facesync probe` "
        "measures page size, delete cap, ids and more in about 20 requests",
    ]


def test_check_json_reports_ok_and_the_endpoint(config_path: Path, emulator: EmulatorThread) -> None:
    result = run(config_path.parent, "--config", config_path.name, "check", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    answer = json.loads(result.stdout)
    assert answer == {
        "ok": True, "endpoint": emulator.base_url, "images": 0, "error": None, "exit_code": 0,
        "profile": None, "note": answer["note"], "config": "facesync.yaml",
        "state": str(config_path.parent / "state" / "facesync.db"), "checks": answer["checks"],
    }  # fmt: skip
    assert [(c["what"], c["ok"]) for c in answer["checks"]] == [("source", True), ("state", True)]
    assert "`facesync probe`" in answer["note"]
    assert [r.path for r in emulator.requests()] == ["/api/v2/face_search/images"]


def check_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of ``check`` (after its OK lines for what passed)."""
    assert "Traceback" not in result.stderr and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("facesync: error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_check_with_a_wrong_secret_exits_3_in_one_line_without_the_secret(
    tmp_path: Path, emulator: EmulatorThread, archive: Path
) -> None:
    path = write_config(tmp_path, emulator.base_url, api={"api_secret": "wrong-secret-4711"})
    result = run(tmp_path, "--config", path.name, "check")
    assert result.returncode == EXIT_AUTH
    line = check_error_line(result)
    assert line.startswith(f"facesync: error: bad credentials for {emulator.base_url}: ")
    assert "wrong-secret-4711" not in line


def test_check_of_an_unreachable_port_exits_1_without_waiting_out_a_slow_retry_policy(
    tmp_path: Path, archive: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}/api/v2/face_search"
    # A retry under this policy sleeps up to an hour (full jitter: over run()'s timeout but for 1 draw in
    # 120), so a check that retried would almost surely time out; the next test counts the requests.
    path = write_config(
        tmp_path,
        endpoint,
        api={"connect_timeout": 1},
        limits={"retries": 5, "backoff_base": 3600, "backoff_max": 3600},
    )
    result = run(tmp_path, "--config", path.name, "check", "--json")
    assert result.returncode == EXIT_FAILED
    answer = json.loads(result.stdout)
    assert (answer["ok"], answer["endpoint"], answer["exit_code"]) == (False, endpoint, EXIT_FAILED)
    assert answer["error"].startswith(f"cannot reach {endpoint}: ")
    assert "\n" not in answer["error"]


def test_check_sends_a_failing_service_one_request_whatever_the_retry_policy(
    tmp_path: Path, emulator: EmulatorThread, archive: Path
) -> None:
    emulator.configure(fail_before=1.0)
    path = write_config(
        tmp_path, emulator.base_url, limits={"retries": 5, "backoff_base": 0.01, "backoff_max": 0.01}
    )
    result = run(tmp_path, "--config", path.name, "check", "--json")
    assert (result.returncode, json.loads(result.stdout)["exit_code"]) == (EXIT_FAILED, EXIT_FAILED)
    assert [r.outcome for r in emulator.requests()] == ["fail_before"]


def test_check_reports_a_throttling_service_at_once_with_exit_4(
    tmp_path: Path, emulator: EmulatorThread, archive: Path
) -> None:
    """At once: one request, whatever ``limits.quota_wait`` says, and no waiting out the Retry-After
    (60 s, twice the timeout ``run`` gives the command)."""
    path = write_config(tmp_path, emulator.base_url, limits={"quota_wait": 600})
    emulator.configure(quota=1, retry_after=60)
    assert run(tmp_path, "--config", path.name, "check").returncode == EXIT_OK

    done = run(tmp_path, "--config", path.name, "check", timeout=30)

    assert done.returncode == 4, done.stderr
    check_error_line(done)
    assert [r.outcome for r in emulator.requests()] == ["ok", "throttled"]


def test_check_refuses_what_sync_would_refuse_and_creates_nothing(
    tmp_path: Path, emulator: EmulatorThread
) -> None:
    """`check` used to say OK for a source that is not there and for an empty config file."""
    data = config_data(
        emulator.base_url, tmp_path, source=tmp_path / "no-such-folder", state=tmp_path / "s" / "x.db"
    )
    path = write_config_file(tmp_path / "facesync.yaml", data)
    result = run(tmp_path, "--config", path.name, "check")
    assert result.returncode == EXIT_FAILED and "no-such-folder" in check_error_line(result)
    assert not (tmp_path / "s").exists()  # nothing created
    (tmp_path / "empty.yaml").write_text("")
    result = run(tmp_path, "--config", "empty.yaml", "check")
    assert result.returncode == EXIT_USAGE and "source.path" in check_error_line(result)
    assert [r for r in emulator.requests()] == []  # the endpoint is not asked when sync could not run


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_says_when_the_state_folder_cannot_be_written(
    tmp_path: Path, emulator: EmulatorThread, archive: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    data = config_data(emulator.base_url, tmp_path, state=locked / "state" / "x.db")
    result = run(tmp_path, "--config", write_config_file(tmp_path / "f.yaml", data).name, "check")
    assert result.returncode == EXIT_USAGE and "not writable" in check_error_line(result)


def test_check_of_an_empty_source_while_the_state_holds_synced_files_is_exit_5(synced: Path) -> None:
    for image in (synced.parent / "archive").rglob("*"):
        if image.is_file():
            image.unlink()
    result = run(synced.parent, "--config", synced.name, "check")
    assert result.returncode == 5 and "mount" in check_error_line(result)


def test_relative_paths_follow_the_config_file_from_any_folder_and_from_cron(
    tmp_path: Path, emulator: EmulatorThread, make_image: Callable[..., Path]
) -> None:
    """A config in /etc/facesync-like folder with relative paths, run from elsewhere with `env -i`."""
    etc = tmp_path / "etc"
    make_image("etc/photos/a.jpg", seed=1)
    data = config_data(emulator.base_url, tmp_path)
    data["source"]["path"], data["state"]["path"] = "photos", "state/photos.db"
    write_config_file(etc / "facesync.yaml", data)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = subprocess.run(
        ["env", "-i", sys.executable, "-m", "pipeline", "--config", str(etc / "facesync.yaml"), "sync"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(Path.cwd())},
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert (etc / "state" / "photos.db").is_file() and not any(elsewhere.iterdir())


def test_status_names_the_config_and_the_state_it_uses(synced: Path) -> None:
    result = run(synced.parent, "--config", synced.name, "status")
    assert result.returncode == EXIT_OK, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"config  {synced.name}", f"state   {synced.parent / 'state' / 'facesync.db'}"]
    answer = json.loads(run(synced.parent, "--config", synced.name, "status", "--json").stdout)
    assert answer["config"] == synced.name


def test_a_dry_run_on_a_mistyped_state_path_exits_2_and_creates_nothing(
    tmp_path: Path, emulator: EmulatorThread, archive: Path
) -> None:
    data = config_data(
        emulator.base_url, tmp_path, state=tmp_path / "stat" / "facesync.db"
    )  # "state" mistyped
    path = write_config_file(tmp_path / "facesync.yaml", data)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(tmp_path, "--config", path.name, "sync", "--dry-run")
    assert result.returncode == EXIT_USAGE and "mistyped state.path" in the_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder, no state, no lock


def test_a_first_dry_run_plans_every_file_and_creates_nothing(
    tmp_path: Path, emulator: EmulatorThread, archive: Path
) -> None:
    (tmp_path / "state").mkdir()
    path = write_config(tmp_path, emulator.base_url)
    result = run(tmp_path, "--config", path.name, "sync", "--dry-run", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    assert json.loads(result.stdout)["planned"]["add"] == 3
    result = run(tmp_path, "--config", path.name, "sync", "--dry-run")
    assert result.returncode == EXIT_OK and "planned as its first sync" in result.stderr, result.stderr
    assert list((tmp_path / "state").iterdir()) == []
