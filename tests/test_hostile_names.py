"""Hostile names stay in their place: what a file name (or a service's answer) holds never reaches the
terminal or the log raw — every human line shows control characters escaped — while ``--json`` keeps the
exact string. Real processes, real files (names with escapes, a newline, bytes that are not UTF-8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.output.terminal import shown
from pipeline.output.text import json_line
from tests.helpers import config_data, write_config_file
from tests.imagefactory import jpeg_bytes

ESCAPES = "evil\x1b[2J\x1b]0;pwned\x07name.jpg"  # clears the screen, sets the window title
FORGED = "forged\nfacesync: all good.jpg"  # a line of its own in a cron mail
RED = "\x1b[31mred\u202egpj.jpg"  # colour, and a right-to-left override
NOT_UTF8 = b"bad-\xff\xfe.jpg"


def facesync(config: Path, *args: str, cwd: Path) -> tuple[int, str, str]:
    """A ``facesync`` process; its output as it was written (bytes that are not UTF-8 kept as escapes)."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", str(config), *args],
        cwd=cwd,
        capture_output=True,
        timeout=60,
    )
    decode = lambda b: b.decode("utf-8", "surrogateescape")  # noqa: E731
    return done.returncode, decode(done.stdout), decode(done.stderr)


def assert_tame(text: str) -> None:
    """No raw control, C1 control, bidi override or undecodable byte on any line; no forged line."""
    for line in text.split("\n"):
        bad = [
            c
            for c in line
            if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c == "\u202e" or "\udc80" <= c <= "\udcff"
        ]
        assert not bad, (line, bad)
        assert not line.startswith("facesync: all good"), text


@pytest.fixture
def hostile(tmp_path: Path, emulator: EmulatorThread) -> Path:
    """An archive (in a folder whose own name holds an escape) with hostile names; its config."""
    root = tmp_path / "arch\x1b]0;t\x07ive"
    root.mkdir()
    (root / ESCAPES).write_bytes(jpeg_bytes(1))
    (root / FORGED).write_text("not a photo")  # skipped: its name is printed
    (root / RED).write_text("not a photo either")
    with open(os.fsencode(root) + b"/" + NOT_UTF8, "wb") as out:
        out.write(jpeg_bytes(2))
    return write_config_file(
        tmp_path / "facesync.yaml", config_data(emulator.base_url, tmp_path, source=root)
    )


def test_sync_shows_every_name_escaped_and_forges_no_line(hostile: Path, tmp_path: Path) -> None:
    code, _, err = facesync(hostile, "sync", cwd=tmp_path)
    assert code == 0, err
    assert_tame(err)
    assert shown(FORGED) in err and shown(RED) in err  # each skipped file named, escaped: \n, \x1b, \u202e
    assert "forged\\nfacesync: all good.jpg" in err and "\\x1b[31mred\\u202egpj.jpg" in err


def test_ls_text_escapes_and_ls_json_keeps_the_exact_name(hostile: Path, tmp_path: Path) -> None:
    assert facesync(hostile, "sync", cwd=tmp_path)[0] == 0
    code, out, err = facesync(hostile, "ls", cwd=tmp_path)
    assert code == 0 and out
    assert_tame(out + err)
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07name.jpg" in out and "bad-\\xff\\xfe.jpg" in out
    code, out, _ = facesync(hostile, "ls", "--json", cwd=tmp_path)
    assert_tame(out)
    keys = {json.loads(line)["key"] for line in out.splitlines()}
    assert {ESCAPES, FORGED, RED} <= keys  # exact, once decoded
    assert "bad-\\xff\\xfe.jpg" in keys  # undecodable bytes in the form metadata carries them


def test_ls_csv_is_exact_off_a_terminal(hostile: Path, tmp_path: Path) -> None:
    assert facesync(hostile, "sync", cwd=tmp_path)[0] == 0
    code, out, _ = facesync(hostile, "ls", "--format", "csv", cwd=tmp_path)
    assert code == 0 and ESCAPES in out  # data to a pipe or a file: as it is (CSV quotes the newline)


def test_status_escapes_what_the_config_names(hostile: Path, tmp_path: Path) -> None:
    assert facesync(hostile, "sync", cwd=tmp_path)[0] == 0
    code, out, err = facesync(hostile, "status", cwd=tmp_path)
    assert code == 0, err
    assert_tame(out + err)
    assert "arch\\x1b]0;t\\x07ive" in out


def test_reconcile_shows_the_services_metadata_and_a_state_path_escaped(
    hostile: Path, tmp_path: Path, emulator: EmulatorThread
) -> None:
    assert facesync(hostile, "sync", cwd=tmp_path)[0] == 0
    emulator.seed(40, {"facesync_key": "gone\x1b[2J\nfacesync: all good.jpg", "facesync_token": "t"})
    code, out, err = facesync(hostile, "reconcile", "--dry-run", cwd=tmp_path)
    assert code == 5, err  # more orphans than the guard allows: the first few named, then a count
    assert_tame(out + err)
    data = config_data(emulator.base_url, tmp_path, state=tmp_path / "st\x1b[2Jate.db")
    (tmp_path / "st\x1b[2Jate.db").write_bytes(b"not a database at all" * 100)
    config = write_config_file(tmp_path / "other.yaml", data)
    code, out, err = facesync(config, "reconcile", cwd=tmp_path)
    assert code == 2 and "st\\x1b[2Jate.db" in err, err
    assert_tame(out + err)


def test_search_shows_the_matching_files_name_escaped(hostile: Path, tmp_path: Path) -> None:
    assert facesync(hostile, "sync", cwd=tmp_path)[0] == 0
    query = tmp_path / "query.jpg"
    query.write_bytes(jpeg_bytes(1))
    code, out, err = facesync(hostile, "search", str(query), cwd=tmp_path)
    assert code == 0, err
    assert_tame(out + err)
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07name.jpg" in out
    code, out, _ = facesync(hostile, "search", str(query), "--json", cwd=tmp_path)
    assert ESCAPES in out.replace("\\u001b", "\x1b").replace("\\u0007", "\x07")  # JSON's escapes


def test_report_says_where_it_wrote_escaped(hostile: Path, tmp_path: Path) -> None:
    assert facesync(hostile, "sync", cwd=tmp_path)[0] == 0
    code, out, err = facesync(hostile, "report", "--html", "page\x1b[2J.html", cwd=tmp_path)
    assert code == 0, err
    assert_tame(out + err)
    assert "page\\x1b[2J.html" in err and (tmp_path / "page\x1b[2J.html").exists()


def test_json_lines_carry_no_raw_control_and_decode_to_the_exact_string() -> None:
    text = "a\x1b[2J\x9b\x7f\u202e\u2028\udcff\n"
    line = json_line({"k": text})
    assert_tame(line)
    assert json.loads(line)["k"] == text
