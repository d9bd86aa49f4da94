"""``facesync search IMAGE --html PATH``: the query photo and every match, as pictures from the archive.

Parsed with ``html.parser``, every picture decoded with Pillow (tests/htmlpage.py); metadata and
urls from the service come out as text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.api import FaceSearchClient
from pipeline.commands.report import write_search_page
from pipeline.commands.search import search
from pipeline.emulator import EmulatorThread
from pipeline.errors import EXIT_OK
from tests.helpers import config_data, make_config, sync, write_config_file, write_files
from tests.htmlpage import Page, assert_safe, picture
from tests.imagefactory import jpeg_bytes

HOSTILE = "<img src=x onerror=alert(1)>.jpg"
HOSTILE_FOLDER = "<svg onload=alert(1)>"


async def test_a_search_page_shows_the_query_and_each_match_from_the_archive(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(
        root, {f"{HOSTILE_FOLDER}/{HOSTILE}": jpeg_bytes(7, (128, 128)), "other/x.jpg": jpeg_bytes(8)}
    )
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == EXIT_OK
    async with FaceSearchClient(emulator.base_url, "demo-key", "demo-secret") as client:
        await client.add_image(jpeg_bytes(7, (100, 100)))  # added by hand, not by facesync
    query = tmp_path / "query.jpg"
    query.write_bytes(jpeg_bytes(7, (96, 96)))
    matches = await search(config, query)

    write_search_page(config, query, matches, tmp_path / "search.html")
    page = Page.read(tmp_path / "search.html")

    assert_safe(page)
    first, *found = page.tiles
    assert (first.title, first.problem, picture(first.srcs[0]).format) == (str(query), None, "JPEG")
    ours = [t for t in found if t.problem is None]
    (theirs,) = [t for t in found if t.problem is not None]
    assert [t.title for t in ours] == [f"{HOSTILE_FOLDER}/{HOSTILE}"]
    assert ours[0].fields["path"] == str(root / HOSTILE_FOLDER / HOSTILE)
    assert (theirs.title, theirs.problem) == ("(not from this archive)", "not from this archive")
    for tile in found:
        assert picture(tile.srcs[0]) and {"score", "remote id"} <= set(tile.fields)


def test_match_metadata_and_urls_from_the_service_are_text(tmp_path: Path) -> None:
    config = make_config("http://127.0.0.1:9/api", tmp_path)
    (tmp_path / "q.jpg").write_bytes(jpeg_bytes(1))
    match = {
        "id": "<b>1</b>",
        "url": "javascript:alert(1)",
        "score": 0.5,
        "key": "k.jpg",
        "path": str(tmp_path / "archive" / "k.jpg"),
        "known": True,
        "metadata": {"album": HOSTILE_FOLDER, "note": '"><script>alert(1)</script>', "n": 3},
    }

    write_search_page(config, tmp_path / "q.jpg", [match], tmp_path / "search.html")
    page = Page.read(tmp_path / "search.html")

    assert_safe(page)
    fields = page.tiles[1].fields
    assert (fields["album"], fields["note"], fields["n"]) == (HOSTILE_FOLDER, match["metadata"]["note"], "3")
    assert (fields["url"], fields["remote id"]) == ("javascript:alert(1)", "<b>1</b>")
    assert page.tiles[1].problem == "the file is gone"


@pytest.fixture
def synced_config(emulator: EmulatorThread, tmp_path: Path) -> Path:
    write_files(tmp_path / "archive", {"a/one.jpg": jpeg_bytes(1), "b.jpg": jpeg_bytes(2)})
    path = write_config_file(tmp_path / "facesync.yaml", config_data(emulator.base_url, tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", str(path), "sync"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == EXIT_OK, done.stderr
    return path


def test_search_html_writes_the_page_beside_the_json_answer(synced_config: Path, tmp_path: Path) -> None:
    (tmp_path / "q.jpg").write_bytes(jpeg_bytes(1))

    args = ["--config", str(synced_config), "search", "q.jpg", "--json", "--html", "s.html"]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == EXIT_OK, done.stderr
    (match,) = json.loads(done.stdout)["matches"]
    assert (match["key"], match["known"]) == ("a/one.jpg", True) and "metadata" in match
    assert done.stderr.startswith("facesync: wrote s.html (")
    page = Page.read(tmp_path / "s.html")
    assert [(t.title, t.problem) for t in page.tiles] == [("q.jpg", None), ("a/one.jpg", None)]
