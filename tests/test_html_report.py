"""``facesync report --html`` and ``sync --report-html``: the archive as a page a person looks at.

Each page is parsed with ``html.parser`` and every picture decoded with Pillow (tests/htmlpage.py):
a refused file has one picture, the chart one mark per run, and nothing that comes from data — a
key, a message, a metadata value — becomes a tag, an attribute or a request.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.commands.report import fair_shares, top_folder, write_report
from pipeline.config import Config, SourceConfig, StateConfig
from pipeline.emulator import EmulatorThread
from pipeline.errors import EXIT_OK, EXIT_USAGE
from pipeline.keys import safe_key
from pipeline.output.html import text
from pipeline.output.thumbs import GRID_PX, NO_LOCAL_FILE
from pipeline.state import Row, State, Status
from tests.helpers import config_data, make_config, state_rows, sync, write_config_file, write_files
from tests.htmlpage import Page, assert_safe, picture
from tests.imagefactory import jpeg_bytes, truncated_jpeg_bytes, zero_by_zero_png

HOSTILE = "<img src=x onerror=alert(1)>.jpg"
HOSTILE_FOLDER = "<svg onload=alert(1)>"
UNDECODABLE = b"caf\xe9.jpg"  # a Latin-1 name: not UTF-8


def report_of(config: Config, tmp_path: Path, **options: Any) -> Page:
    options = {"runs": 30, "max_thumbnails": 1000, **options}
    written = write_report(config, tmp_path / "report.html", **options)
    assert written.size == (tmp_path / "report.html").stat().st_size
    return Page.read(tmp_path / "report.html")


def put_rows(config: Config, rows: list[Row]) -> None:
    with State.open(config.state.path) as state:
        state.put_many(rows)


def offline_config(tmp_path: Path) -> Config:
    """A config whose API is never called (a report only reads the state and the files)."""
    return make_config("http://127.0.0.1:9/api", tmp_path)


async def test_each_refused_or_skipped_file_has_one_picture_pillow_opens_and_names_are_text(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(
        root,
        {
            "ok/a.jpg": jpeg_bytes(1),
            f"{HOSTILE_FOLDER}/b.jpg": jpeg_bytes(2),
            "family/blank.png": zero_by_zero_png(),  # whole, but the service refuses it
            "family/truncated.jpg": truncated_jpeg_bytes(3),
            "family/notes.jpg": b"not a picture\n",
            HOSTILE: b"not a picture either\n",
            "2019/empty.jpg": b"",
        },
    )
    with open(os.path.join(os.fsencode(root), UNDECODABLE), "wb") as f:
        f.write(b"text again\n")
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == EXIT_OK

    page = report_of(config, tmp_path)

    rows = state_rows(config).values()
    refused = sorted((r.status.value, safe_key(r.key)) for r in rows if r.status is not Status.SYNCED)
    assert sorted((t.status, t.title) for t in page.tiles) == refused
    assert {safe_key(UNDECODABLE.decode("utf-8", "surrogateescape")), HOSTILE} <= {
        t.title for t in page.tiles
    }
    for tile in page.tiles:
        (src,) = tile.srcs
        assert max(picture(src).size) <= 256
        assert tile.problem is not None  # none of these is a picture: each shows the placeholder
        assert tile.fields["reason"]
    problems = {t.title: t.problem for t in page.tiles}
    latin1 = safe_key(UNDECODABLE.decode("utf-8", "surrogateescape"))
    assert problems[latin1] == problems[HOSTILE] == "cannot be decoded"  # found, read, not a picture
    (blank,) = [t for t in page.tiles if t.title == "family/blank.png"]
    assert blank.fields["reason"].startswith("[3] ")
    assert_safe(page)
    assert HOSTILE in page.visible_text() and HOSTILE_FOLDER in page.visible_text()
    folders = {row[0]: row[1] for row in page.tables[0][1:]}
    assert folders == {
        "family": "3", "ok": "1", HOSTILE_FOLDER: "1", "2019": "1", "(top level)": "2",
    }  # fmt: skip


def test_a_refused_photo_shows_its_own_picture_made_small(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    write_files(tmp_path / "archive", {"big/photo.jpg": jpeg_bytes(9, (1600, 1200))})
    put_rows(config, [Row("big/photo.jpg", 1, 1, Status.REJECTED, code=2, message="no face in the image")])

    page = report_of(config, tmp_path)

    (tile,) = page.tiles
    assert tile.problem is None
    assert picture(tile.srcs[0]).size == (GRID_PX, GRID_PX * 3 // 4)
    assert tile.fields["reason"] == "[2] no face in the image"


def test_hostile_keys_and_messages_are_shown_as_text_and_never_as_markup(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    message = '</dd></dl><script>alert("x")</script><a href="javascript:alert(1)" onclick=x>'
    put_rows(
        config,
        [
            Row(HOSTILE, 1, 1, Status.REJECTED, code=3, message=message),
            Row("a\u202egpj.exe", 1, 1, Status.SKIPPED, message="not_an_image: \x1b[31m\tred"),
            Row('"quoted" & <b>.jpg', 1, 1, Status.FAILED, message="HTTP 503 <html><body onload=x>"),
        ],
    )

    page = report_of(config, tmp_path)
    raw = (tmp_path / "report.html").read_text(encoding="utf-8")

    assert_safe(page)
    assert "<script" not in raw and 'href="javascript' not in raw and "<b>.jpg" not in raw
    assert sorted(t.title for t in page.tiles) == sorted([HOSTILE, "a\\u202egpj.exe", '"quoted" & <b>.jpg'])
    reasons = {t.title: t.fields["reason"] for t in page.tiles}
    assert reasons[HOSTILE] == f"[3] {message}"
    assert reasons["a\\u202egpj.exe"] == "not_an_image: \\u001b[31m red"  # invisible ones made visible
    assert text("\ud800 \udce9") == "\\ud800 \\xe9"  # a lone surrogate; an undecodable byte


def test_the_run_chart_has_one_mark_per_run_newest_runs_only(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    with State.open(config.state.path) as state:
        for i in range(7):
            run = state.start_run("sync")
            counts = {"added": i, "replaced": 1, "removed": 0, "rejected": {"3": 2}, "throttled": i % 2}
            state.finish_run(run, exit_code=4 if i == 3 else 0, counts=counts)
        reconcile = state.start_run("reconcile")
        state.finish_run(reconcile, exit_code=0, counts={"deleted": 5, "duplicates_removed": 1})
        state.start_run("sync")  # killed: never finished

    every = report_of(config, tmp_path)
    none = report_of(config, tmp_path, runs=0)
    last_five = report_of(config, tmp_path, runs=5)

    assert every.runs == [str(i) for i in range(1, 10)]  # oldest on the left
    assert last_five.runs == ["5", "6", "7", "8", "9"]
    assert none.runs == [] and "Last runs" not in none.visible_text()  # --runs 0: no section at all
    circles = [attrs for tag, attrs in every.tags if tag == "circle" and attrs.get("class") == "duration"]
    assert len(circles) == 8  # the unfinished run has no duration
    assert "#4 sync at" in every.visible_text() and ": exit 4, " in every.visible_text()
    assert "removed 6, rejected 0, throttled 0" in every.visible_text()  # reconcile's deletions
    (table,) = [t for t in last_five.tables if t[0][0] == "run"]
    assert [row[0] for row in table[1:]] == ["#9", "#8", "#7", "#6", "#5"]
    assert table[1][4] == "unfinished"


def test_thumbnails_are_capped_shared_fairly_and_what_is_left_out_is_counted(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    rejected = [Row(f"r/{i:03d}.jpg", 1, 1, Status.REJECTED, code=3, message="bad") for i in range(30)]
    skipped = [Row(f"s/{i:03d}.jpg", 1, 1, Status.SKIPPED, message="empty: 0 bytes") for i in range(5)]
    put_rows(config, [*rejected, *skipped])

    written = write_report(config, tmp_path / "report.html", runs=30, max_thumbnails=12)
    page = Page.read(tmp_path / "report.html")

    assert (written.thumbnails, written.left_out) == (12, 23)
    assert Counter(t.status for t in page.tiles) == {"rejected": 7, "skipped": 5}
    assert [t.title for t in page.tiles if t.status == "rejected"] == [r.key for r in rejected[:7]]
    assert "and 23 more not shown here" in page.visible_text()
    assert "facesync ls --status rejected --format csv" in page.visible_text()
    assert all(t.problem == "the file is gone" for t in page.tiles)


@pytest.mark.parametrize(
    ("sizes", "budget", "shares"),
    [
        ([30, 5, 0], 12, [7, 5, 0]),
        ([30, 30, 30], 10, [3, 3, 4]),
        ([2, 3, 4], 100, [2, 3, 4]),
        ([5], 0, [0]),
        ([], 5, []),
    ],
)
def test_fair_shares(sizes: list[int], budget: int, shares: list[int]) -> None:
    assert fair_shares(sizes, budget) == shares


@given(st.lists(st.integers(0, 50), max_size=5), st.integers(0, 120))
def test_fair_shares_spend_the_budget_and_no_group_that_wants_more_gets_less(
    sizes: list[int], budget: int
) -> None:
    shares = fair_shares(sizes, budget)
    assert sum(shares) == min(budget, sum(sizes))
    assert all(0 <= s <= n for s, n in zip(shares, sizes, strict=True))
    for s, n in zip(shares, sizes, strict=True):
        if s < n:
            assert all(s >= other - 1 for other in shares)


def test_top_folder() -> None:
    assert [top_folder(k) for k in ("a/b/c.jpg", "a.jpg", "a b/c.jpg")] == ["a", "", "a b"]


def test_an_s3_archive_shows_placeholders_for_files_with_no_local_copy(tmp_path: Path) -> None:
    config = Config(
        source=SourceConfig(manifest="s3://inventory/photos/manifest.json"),
        state=StateConfig(path=tmp_path / "state.db"),
    )
    put_rows(config, [Row("2024/x.jpg", 1, 1, Status.REJECTED, code=3, message="bad")])

    page = report_of(config, tmp_path)

    (tile,) = page.tiles
    assert tile.problem == NO_LOCAL_FILE and picture(tile.srcs[0]).format == "PNG"


# -- the command line -------------------------------------------------------------------------------------


def facesync(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def synced_config(emulator: EmulatorThread, tmp_path: Path) -> Path:
    write_files(
        tmp_path / "archive", {"a/one.jpg": jpeg_bytes(1), "a/bad.jpg": b"text", "b.jpg": jpeg_bytes(2)}
    )
    path = write_config_file(tmp_path / "facesync.yaml", config_data(emulator.base_url, tmp_path))
    assert facesync(tmp_path, "--config", str(path), "sync").returncode == EXIT_OK
    return path


def test_report_writes_the_page_and_says_where_in_one_line(synced_config: Path, tmp_path: Path) -> None:
    done = facesync(tmp_path, "--config", str(synced_config), "report", "--html", "out/report.html")

    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("facesync: wrote out/report.html (") and "1 thumbnails" in line
    page = Page.read(tmp_path / "out" / "report.html")
    assert [(t.status, t.title) for t in page.tiles] == [("skipped", "a/bad.jpg")]
    assert page.runs == ["1"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.html"]  # no temporary file left


def test_report_refuses_a_missing_state_and_creates_nothing(emulator: EmulatorThread, tmp_path: Path) -> None:
    typo = tmp_path / "stat" / "facesync.db"
    config = write_config_file(
        tmp_path / "facesync.yaml", config_data(emulator.base_url, tmp_path, state=typo)
    )
    before = sorted(p.name for p in tmp_path.iterdir())

    done = facesync(tmp_path, "--config", str(config), "report", "--html", "report.html")

    assert done.returncode == EXIT_USAGE
    assert done.stderr.splitlines() == [
        f"facesync: error: state {typo}: no such file (check state.path; `facesync sync` creates the state)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_report_to_a_path_that_cannot_be_written_is_one_line_and_exit_2(
    synced_config: Path, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")

    done = facesync(tmp_path, "--config", str(synced_config), "report", "--html", "a-file/report.html")

    assert done.returncode == EXIT_USAGE
    (line,) = done.stderr.splitlines()
    assert line.startswith("facesync: error: cannot write a-file/report.html: ")


def test_sync_report_html_writes_the_report_at_the_end_of_the_run(
    synced_config: Path, tmp_path: Path
) -> None:
    done = facesync(tmp_path, "--config", str(synced_config), "sync", "--json", "--report-html", "r.html")

    assert done.returncode == EXIT_OK, done.stderr
    assert json.loads(done.stdout)["unchanged"] == 3
    assert Page.read(tmp_path / "r.html").runs == ["1", "2"]  # this run included


def test_sync_report_html_that_cannot_be_written_warns_and_keeps_the_exit_code(
    synced_config: Path, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")

    done = facesync(tmp_path, "--config", str(synced_config), "sync", "--report-html", "a-file/r.html")

    assert done.returncode == EXIT_OK
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    not_a_dir = os.strerror(errno.ENOTDIR)
    assert warnings == [
        f"facesync: warning: HTML report not written: cannot write a-file/r.html: {not_a_dir}"
    ]


def test_a_run_stopped_by_its_deadline_is_drawn_apart_from_a_failed_one() -> None:
    """Exit 7 (the deadline) and 4 (a quota or budget) are resumable stops, not failures: orange, not red."""
    from pipeline.output.charts import FAILED_COLOUR, STOPPED_COLOUR, runs_chart

    base = {"command": "sync", "started_at": 1.0, "finished_at": 2.0, "counts": {}}
    svg = runs_chart([{**base, "id": 1, "exit_code": 7}, {**base, "id": 2, "exit_code": 1}])
    label = {n: svg[svg.index(f">{n}</text>") - 80 : svg.index(f">{n}</text>")] for n in (1, 2)}
    assert STOPPED_COLOUR in label[1] and FAILED_COLOUR not in label[1]
    assert FAILED_COLOUR in label[2]
