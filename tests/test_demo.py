"""``make demo`` as a new user meets it: the whole job runs, and the command it suggests at the end works
from a shell whose PATH does not hold the project's venv (nobody activated it)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path


def test_the_demo_runs_and_its_closing_hint_is_a_command_that_works(tmp_path: Path) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "pipeline.demo"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    (hint,) = [line for line in demo.stdout.splitlines() if line.startswith("Done. Try: ")]
    command = shlex.split(hint.removeprefix("Done. Try: "))
    assert command[-3:] == ["--config", "demo/facesync.yaml", "--help"]

    plain_shell = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": "/usr/bin:/bin"}
    tried = subprocess.run(command, cwd=tmp_path, env=plain_shell, capture_output=True, text=True, timeout=60)

    assert tried.returncode == 0, tried.stderr
    assert tried.stdout.startswith("Usage: facesync")
    # What the demo did, in the state it left: the broken files each have their reason.
    ls = subprocess.run(
        [*command[:-1], "ls", "--format", "csv"],
        cwd=tmp_path,
        env=plain_shell,
        capture_output=True,
        text=True,
    )
    statuses = {line.split(",")[0]: line.split(",")[1] for line in ls.stdout.splitlines()[1:]}
    assert statuses["family/truncated.jpg"] == "skipped" and statuses["family/blank.png"] == "rejected"
    # The search finds a photo of the Takeout export (zips read in place) and names its faces.
    (found,) = [line for line in demo.stdout.splitlines() if "IMG_0002-edited.jpg" in line]
    assert "people: Binh, Minh" in found
    # It ends by writing the HTML report, and says where.
    assert f"Report: {(tmp_path / 'demo' / 'report.html').as_uri()}" in demo.stdout
    assert "family/truncated.jpg" in (tmp_path / "demo" / "report.html").read_text(encoding="utf-8")
