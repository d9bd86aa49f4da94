"""What a run says, as an operator sees it: ``-v``/``-q``/``--log-file``, the plan a dry run lists, and
the wording of the summary, an interruption and a fatal error (issue 26). Real processes, the real
emulator, real files; the progress bar through a real pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.output.reporter import Activity
from tests.helpers import config_data, run_facesync, write_config_file

SECRET = "s3cr3t-Value-42"


def facesync(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_facesync(*args, cwd=cwd)


def write_config(tmp_path: Path, emulator: EmulatorThread, **limits: Any) -> Path:
    data = config_data(
        emulator.base_url,
        tmp_path,
        state=tmp_path / "state" / "facesync.db",
        limits={"concurrency": 2, "max_delete": "100%", **limits},
    )
    return write_config_file(tmp_path / "facesync.yaml", data)


@pytest.fixture
def five(make_image: Callable[..., Path], tmp_path: Path) -> Path:
    for seed, name in enumerate(["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]):
        make_image(f"archive/{name}", seed=seed)
    return tmp_path / "archive"


def test_a_dry_run_lists_every_planned_action_and_v_names_each_as_done(
    emulator: EmulatorThread, tmp_path: Path, five: Path, make_image: Callable[..., Path]
) -> None:
    config = str(write_config(tmp_path, emulator))
    assert facesync(tmp_path, "--config", config, "sync").returncode == 0
    make_image("archive/f.jpg", seed=10)  # add
    make_image("archive/b.jpg", seed=11)  # replace: new content
    os.utime(five / "c.jpg", ns=(1_000_000_000, 1_000_000_000))  # retouch: the stat alone
    (five / "d.jpg").rename(five / "d2.jpg")  # rename
    (five / "e.jpg").unlink()  # remove
    expected = {
        ("add", "f.jpg", None),
        ("replace", "b.jpg", None),
        ("retouch", "c.jpg", None),
        ("rename", "d2.jpg", "d.jpg"),
        ("remove", "e.jpg", None),
    }

    dry = facesync(tmp_path, "--config", config, "sync", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert {(a["action"], a["key"], a.get("from")) for a in report["actions"]} == expected
    assert len(report["actions"]) == 5
    assert report["planned"] == {"add": 1, "replace": 1, "retouch": 1, "rename": 1, "remove": 1}

    said = facesync(tmp_path, "--config", config, "-v", "sync", "--dry-run").stderr
    for line in [
        "would add f.jpg",
        "would replace b.jpg",
        "would retouch c.jpg",
        "would rename d.jpg → d2.jpg",
    ]:
        assert f"facesync: {line}\n" in said, said
    assert len(re.findall(r"would remove e\.jpg", said)) == 1, said  # named once, with its remote id

    done = facesync(tmp_path, "--config", config, "sync", "-v")
    assert done.returncode == 0, done.stderr
    for line in [
        "added f.jpg",
        "replaced b.jpg",
        "retouched c.jpg",
        "renamed d.jpg → d2.jpg",
        "removed e.jpg",
    ]:
        assert f"facesync: {line}\n" in done.stderr, done.stderr
    again = facesync(tmp_path, "--config", config, "sync", "--dry-run", "-v")
    assert "dry run: nothing to do;" in again.stderr and "would nothing" not in again.stderr
    assert (
        json.loads(facesync(tmp_path, "--config", config, "sync", "--dry-run", "--json").stdout)["actions"]
        == []
    )


def test_q_says_nothing_on_a_clean_run_and_the_error_and_summary_on_a_bad_one(
    emulator: EmulatorThread, tmp_path: Path, five: Path, make_image: Callable[..., Path]
) -> None:
    config = str(write_config(tmp_path, emulator))
    quiet = facesync(tmp_path, "--config", config, "sync", "-q")
    assert (quiet.returncode, quiet.stderr, quiet.stdout) == (0, "", "")
    make_image("archive/new.jpg", seed=20)
    emulator.configure(api_secret="another")
    bad = facesync(tmp_path, "-q", "--config", config, "sync")
    assert bad.returncode == 3
    lines = bad.stderr.splitlines()
    assert lines[0].startswith("facesync: error: ") and "api_secret" in lines[0]
    assert lines[-1].startswith("facesync: sync: ") and lines[-1].endswith("exit 3")
    both = facesync(tmp_path, "--config", config, "-q", "sync", "-v")
    assert both.returncode == 2 and "give -v or -q, not both" in both.stderr


def test_log_file_appends_timestamped_lines_and_never_shows_the_secret(
    emulator: EmulatorThread, tmp_path: Path, five: Path
) -> None:
    emulator.configure(api_secret=SECRET)
    data = config_data(
        emulator.base_url, tmp_path, state=tmp_path / "state" / "f.db", api={"api_secret": SECRET}
    )
    config = str(write_config_file(tmp_path / "facesync.yaml", data))
    (five / f"{SECRET}.jpg").write_text("not an image, and its name is the secret")
    log = tmp_path / "logs" / "facesync.log"
    log.parent.mkdir()

    first = facesync(tmp_path, "--config", config, "--log-file", str(log), "sync")
    assert first.returncode == 0, first.stderr
    second = facesync(tmp_path, "--config", config, "sync", "-v", "--log-file", str(log), "--dry-run")
    assert second.returncode == 0, second.stderr

    text = log.read_text()
    assert SECRET not in text and SECRET not in first.stderr + second.stderr
    assert "skipped ***.jpg: not_an_image" in text and "skipped ***.jpg" in first.stderr
    lines = text.splitlines()
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[\d+\] facesync: ")
    assert all(stamp.match(line) for line in lines), text
    assert sum("facesync: sync: added 5" in line for line in lines) == 1  # the first run's summary ...
    assert sum("dry run: nothing to do" in line for line in lines) == 1  # ... then the second's, appended
    assert "Traceback" not in text
    unwritable = facesync(
        tmp_path, "--config", config, "--log-file", str(tmp_path / "no" / "dir" / "x.log"), "status"
    )
    assert unwritable.returncode == 2 and "cannot append to" in unwritable.stderr


def test_ctrl_c_says_interrupted_what_was_recorded_and_what_to_run(
    emulator: EmulatorThread, tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    for seed in range(30):
        make_image(f"archive/{seed:02}.jpg", seed=seed)
    config = str(write_config(tmp_path, emulator))
    emulator.configure(delay=0.3, seed=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", config, "sync"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(emulator.requests()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    error = next(line for line in err.splitlines() if line.startswith("facesync: error: "))
    assert "interrupted (Ctrl-C)" in error and "is recorded" in error
    assert "run `facesync sync` again to finish" in error
    summary = err.splitlines()[-1]
    assert summary.startswith("facesync: sync: ") and "exit 130" in summary
    assert "pending" not in summary  # in-flight rows are `uploading`, as status and ls name them


def test_the_summary_counts_add_up_to_the_files_seen(
    emulator: EmulatorThread, tmp_path: Path, five: Path
) -> None:
    (five / "notes.jpg").write_text("not an image")
    (five / "empty.jpg").write_bytes(b"")
    config = str(write_config(tmp_path, emulator))
    first = facesync(tmp_path, "--config", config, "sync").stderr.splitlines()[-1]
    assert "added 5, replaced 0, unchanged 0, skipped 2 = 7 file(s); removed 0;" in first, first
    second = facesync(tmp_path, "--config", config, "sync").stderr.splitlines()[-1]
    assert "added 0, replaced 0, unchanged 7 = 7 file(s); removed 0;" in second, second


def test_reconcile_stopped_by_wrong_credentials_prints_no_table_of_zeros(
    emulator: EmulatorThread, tmp_path: Path, five: Path
) -> None:
    config = str(write_config(tmp_path, emulator))
    assert facesync(tmp_path, "--config", config, "sync").returncode == 0
    emulator.configure(api_secret="another")
    result = facesync(tmp_path, "--config", config, "reconcile")
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("facesync: error: ")
    assert lines[1].startswith("facesync: reconcile: nothing changed (") and lines[1].endswith("exit 3")


# -- the progress bar ----------------------------------------------------------------------------------


def test_the_progress_status_labels_its_figures() -> None:
    assert Activity(rate=3388.1).status() == "limit 3388.1 req/s"  # a limit, not a throughput
    assert Activity(gate_closed=True, rate=2.0, wait=7).status() == "throttled, waiting 7s"
    assert Activity(gate_closed=True, wait=0).status() == "throttled, probing"
    assert Activity(rate=20.0, retrying=3).status() == "retrying (3) · limit 20.0 req/s"
    assert Activity(retrying=1).status() == "retrying (1)"


def on_a_terminal(cwd: Path, *args: str, timeout: float = 60) -> tuple[int, str]:
    """Run facesync with stderr on a pseudo-terminal (the progress bar shows); its exit code and screen."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=slave, env=env
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), screen.decode("utf-8", "replace")


def test_a_terminal_shows_retrying_while_the_service_fails(
    emulator: EmulatorThread, tmp_path: Path, five: Path
) -> None:
    config = str(write_config(tmp_path, emulator, backoff_base=0.4, backoff_max=0.8, retries=4))
    emulator.configure(fail_before=1.0)
    code, screen = on_a_terminal(tmp_path, "--config", config, "sync")
    assert code == 1, screen
    assert re.search(r"retrying \(\d+\)", screen), screen


def test_a_terminal_shows_throttled_waiting_while_the_gate_is_closed(
    emulator: EmulatorThread, tmp_path: Path, five: Path
) -> None:
    config = str(write_config(tmp_path, emulator, quota_wait=4))
    emulator.configure(throttle_share=1.0, retry_after=3)
    code, screen = on_a_terminal(tmp_path, "--config", config, "sync")
    assert code == 4, screen
    assert re.search(r"throttled, waiting \d+s", screen), screen
