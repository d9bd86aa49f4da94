"""Names in ``facesync search``: who is in each match (its metadata's ``people``), in ``--json``, in the
text lines (escaped, as every human line is) and on the HTML page. The service's search answer carries
``{id, url}`` only, so the metadata of a match from this archive is built again from its file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.commands.report import previews, write_report, write_search_page
from pipeline.commands.search import search
from pipeline.emulator import EmulatorThread
from pipeline.errors import EXIT_OK
from pipeline.output.text import match_line
from tests.helpers import config_data, make_config, sync, write_config_file, write_files
from tests.htmlpage import Page, assert_safe, picture
from tests.imagefactory import jpeg_bytes, zero_by_zero_png
from tests.sources.test_zipped import GP, PHOTOS, make_zip, takeout

TAKEOUT = {
    "title": "Tết",
    "photoTakenTime": {"timestamp": "1556699400"},
    "people": [{"name": "Minh"}, {"name": "Lan"}],
}


def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    write_files(root, {"2019/IMG_0001.jpg": jpeg_bytes(7, (128, 128)), "2019/IMG_0002.jpg": jpeg_bytes(8)})
    (root / "2019/IMG_0001.jpg.json").write_text(json.dumps(TAKEOUT), encoding="utf-8")
    return root


async def test_a_match_from_the_archive_carries_the_names_of_its_sidecar(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = archive(tmp_path)
    config = make_config(emulator.base_url, tmp_path, metadata={"people": "{people}", "title": "{title}"})
    assert (await sync(config))[0].exit_code == EXIT_OK
    query = tmp_path / "query.jpg"
    query.write_bytes(jpeg_bytes(7, (96, 96)))
    since = len(emulator.requests())

    (match,) = await search(config, query)

    assert [r.path.rsplit("/", 1)[-1] for r in emulator.requests()[since:]] == ["search"]  # no listing
    assert (match["key"], match["people"], match["metadata_from"]) == (
        "2019/IMG_0001.jpg",
        "Lan, Minh",
        "archive",
    )
    assert match["metadata"]["title"] == "Tết" and match["metadata"]["people"] == "Lan, Minh"
    line = match_line(match)
    assert f"{root / '2019/IMG_0001.jpg'}  people: Lan, Minh  http" in line

    write_search_page(config, query, [match], tmp_path / "search.html")
    tile = Page.read(tmp_path / "search.html").tiles[1]
    assert tile.fields["people"] == "Lan, Minh"
    assert list(tile.fields)[:4] == ["score", "remote id", "path", "people"]  # the names before the rest


async def test_a_match_without_names_shows_none_and_the_line_is_as_it_was(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    archive(tmp_path)
    config = make_config(emulator.base_url, tmp_path)  # no template: the metadata is facesync's own
    assert (await sync(config))[0].exit_code == EXIT_OK
    query = tmp_path / "query.jpg"
    query.write_bytes(jpeg_bytes(8))

    (match,) = await search(config, query)

    assert (match["key"], match["people"], match["metadata_from"]) == ("2019/IMG_0002.jpg", None, "archive")
    assert "people" not in match_line(match)


def test_names_from_the_service_are_taken_as_they_are_and_shown_escaped() -> None:
    meta = {"people": "Lan\x1b[2J"}
    match = {"id": 1, "url": None, "score": 0.9, "key": "a.jpg", "path": None, "known": True,
             "metadata": meta, "metadata_from": "service", "people": meta["people"]}  # fmt: skip
    assert match_line(match).endswith("a.jpg  people: Lan\x1b[2J  ")  # raw here: the printer escapes


def test_the_names_are_printed_escaped(emulator: EmulatorThread, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    write_files(root, {"a.jpg": jpeg_bytes(7, (128, 128))})
    (root / "a.jpg.json").write_text(json.dumps({"people": ["Lan\x1b]0;owned\x07", "Minh\nfacesync: ok"]}))
    path = write_config_file(tmp_path / "facesync.yaml", config_data(emulator.base_url, tmp_path))
    (tmp_path / "q.jpg").write_bytes(jpeg_bytes(7, (96, 96)))

    def facesync(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pipeline", "--config", str(path), *args]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert facesync("sync").returncode == EXIT_OK
    done = facesync("search", "q.jpg")
    shown = facesync("search", "q.jpg", "--json", "--html", "s.html")

    assert done.returncode == EXIT_OK, done.stderr
    (line,) = done.stdout.splitlines()
    assert "people: Lan\\x1b]0;owned\\x07, Minh\\nfacesync: ok  http" in line  # a plain sidecar's list
    (match,) = json.loads(shown.stdout)["matches"]
    assert match["metadata"]["people"] == ["Lan\x1b]0;owned\x07", "Minh\nfacesync: ok"]  # exact in --json
    page = Page.read(tmp_path / "s.html")
    assert_safe(page)
    assert (
        page.tiles[1].fields["people"] == "Lan\\u001b]0;owned\\u0007, Minh facesync: ok"
    )  # the page's escapes


async def test_a_match_inside_a_zip_is_shown_as_its_member_with_a_picture_read_from_the_zip(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    takeout(exports)
    config = make_config(
        emulator.base_url, tmp_path, source=exports / "takeout-*.zip", metadata={"people": "{people}"}
    )
    assert (await sync(config))[0].exit_code == EXIT_OK
    query = tmp_path / "query.jpg"
    query.write_bytes(PHOTOS[GP + "IMG_0002.jpg"])  # (a thumbnail-sized JPEG: the same dHash)

    (match,) = await search(config, query)

    member = f"{exports / 'takeout-001.zip'}!/{GP}IMG_0002.jpg"
    assert (match["key"], match["path"], match["people"]) == (GP + "IMG_0002.jpg", member, "Lan, Minh")
    assert f"{member}  people: Lan, Minh  http" in match_line(match)
    write_search_page(config, query, [match], tmp_path / "search.html")
    tile = Page.read(tmp_path / "search.html").tiles[1]
    assert (tile.problem, tile.fields["path"]) == (None, member)
    assert picture(tile.srcs[0]).format == "JPEG"  # decoded from the member, not a placeholder


async def test_the_report_reads_a_zip_members_picture_from_the_zip(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    make_zip(
        exports / "a.zip", {"x/blank.png": zero_by_zero_png(), "x/ok.jpg": jpeg_bytes(1), "x/text.jpg": "{}"}
    )
    config = make_config(emulator.base_url, tmp_path, source=exports / "a.zip")
    assert (await sync(config))[0].exit_code == EXIT_OK

    write_report(config, tmp_path / "report.html", runs=0, max_thumbnails=10)
    tiles = {t.title: t.problem for t in Page.read(tmp_path / "report.html").tiles}

    # Read from the zip and found not to be pictures (before: "the file is gone", no such path).
    assert tiles == {"x/blank.png": "cannot be decoded", "x/text.jpg": "cannot be decoded"}
    (ok,) = previews(config, ["x/ok.jpg"])
    (gone,) = previews(config, ["x/gone.jpg"])
    assert (ok.problem, gone.problem) == (None, "no local copy")
