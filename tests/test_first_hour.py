"""What a newcomer meets before the first sync (issue 26): `make demo` on a fresh clone says it is
installing instead of a silent wait, and the shell completion the README documents works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_on_a_fresh_clone_first_says_it_is_installing(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # -n: what make would run on a clone without .venv — the first line it echoes is what the user sees
    env = {
        k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }  # under make test
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert "installing" in first and "first run only" in first, result.stdout


def test_bash_completion_documented_in_the_readme_completes_commands() -> None:
    assert "_FACESYNC_COMPLETE=bash_source facesync" in (ROOT / "README.md").read_text()
    script = Path(sys.executable).with_name("facesync")
    source = subprocess.run(
        [str(script)], env={**os.environ, "_FACESYNC_COMPLETE": "bash_source"}, capture_output=True, text=True
    )
    assert source.returncode == 0 and "complete" in source.stdout and "_facesync_completion" in source.stdout
    words = subprocess.run(
        [str(script)],
        env={
            **os.environ,
            "_FACESYNC_COMPLETE": "bash_complete",
            "COMP_WORDS": "facesync rec",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
    )
    assert "plain,reconcile" in words.stdout.splitlines(), words.stdout
