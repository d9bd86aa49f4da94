"""``metadata_table: gallery.csv``: a row per key, each other column a template field — the bridge from a
gallery's database. Read once per run; editing one row is one PUT, never an upload."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pipeline.config import KEY_FIELD, load_config
from pipeline.emulator import EmulatorThread
from pipeline.engine.metadata import MetadataBuilder, MetadataTable
from pipeline.errors import ConfigError
from tests.helpers import config_data, make_config, sync, write_config_file, write_files
from tests.imagefactory import jpeg_bytes

TEMPLATE = {"by": "{photographer}", "title": "{title}", "album": "{album}"}


def by_key(emulator: EmulatorThread) -> dict[str, dict[str, object]]:
    return {str(i.metadata[KEY_FIELD]): dict(i.metadata) for i in emulator.images() if i.metadata}


def gallery(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gallery.csv"
    path.write_text(text, encoding="utf-8")
    return path


async def test_a_table_fills_fields_and_editing_one_row_is_one_put(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(root, {"2019/a.jpg": jpeg_bytes(1), "2019/b.jpg": jpeg_bytes(2), "c.jpg": jpeg_bytes(3)})
    (root / "2019/b.jpg.json").write_text(json.dumps({"title": "from the sidecar"}))
    table = gallery(
        tmp_path,
        "key,photographer,title,album\n"
        "2019/a.jpg,Lan,Hồ Gươm,Hà Nội 2019\n"
        '2019/b.jpg,"Minh, Jr.",,\n',  # empty cells: the sidecar's title and the folder's album stand
    )
    config = make_config(emulator.base_url, tmp_path, metadata=TEMPLATE, metadata_table=str(table))

    report, log = await sync(config)

    assert report.exit_code == 0 and report.added == 3, log
    got = {k: (m["by"], m["title"], m["album"]) for k, m in by_key(emulator).items()}
    assert got == {
        "2019/a.jpg": ("Lan", "Hồ Gươm", "Hà Nội 2019"),
        "2019/b.jpg": ("Minh, Jr.", "from the sidecar", "2019"),
        "c.jpg": ("", "", ""),  # no row: every table field empty
    }
    since = len(emulator.requests())

    table.write_text(table.read_text(encoding="utf-8").replace("Lan,", "Lan Nguyen,"), encoding="utf-8")
    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert (report.added, report.replaced, report.metadata_updated) == (0, 0, 1), log
    assert Counter(r.method for r in emulator.requests()[since:]) == {"PUT": 1}
    assert by_key(emulator)["2019/a.jpg"]["by"] == "Lan Nguyen"
    again, _ = await sync(config)
    assert again.requests == 0


async def test_a_row_added_for_a_file_without_one_is_one_put(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    write_files(tmp_path / "archive", {"a.jpg": jpeg_bytes(1), "b.jpg": jpeg_bytes(2)})
    table = gallery(tmp_path, "file,photographer\na.jpg,Lan\n")  # no 'key' column: the first is the key
    config = make_config(
        emulator.base_url, tmp_path, metadata={"by": "{photographer}"}, metadata_table=str(table)
    )
    assert (await sync(config))[0].added == 2
    table.write_text("file,photographer\na.jpg,Lan\nb.jpg,Hoa\n", encoding="utf-8")

    report, log = await sync(config)

    assert (report.added, report.metadata_updated) == (0, 1), log
    assert {k: m["by"] for k, m in by_key(emulator).items()} == {"a.jpg": "Lan", "b.jpg": "Hoa"}


def test_the_key_column_is_the_first_or_the_one_named_key(tmp_path: Path) -> None:
    path = gallery(
        tmp_path, "\ufefftitle,key,who\nT,x/a.jpg,Lan\nshort,x/b.jpg\n,,\n"
    )  # a BOM, as Excel writes
    table = MetadataTable.read(path)
    assert table.fields == ("title", "who")
    assert dict(table.rows) == {"x/a.jpg": ("T", "Lan"), "x/b.jpg": ("short", "")}
    builder = MetadataBuilder({"t": "{title:untitled} by {who:?}"}, table)
    facts = {"size": 1, "mtime_ns": 0, "sha256": "s", "token": "t"}
    assert builder.build("x/b.jpg", **facts)["t"] == "short by ?"  # type: ignore[arg-type]
    assert builder.build("x/c.jpg", **facts)["t"] == "untitled by ?"  # type: ignore[arg-type]


def test_the_signature_holds_the_row(tmp_path: Path) -> None:
    one = MetadataTable.read(gallery(tmp_path, "key,who\na.jpg,Lan\nb.jpg,Minh\n"))
    two = MetadataTable.read(gallery(tmp_path, "key,who\na.jpg,Lan\nb.jpg,Hoa\n"))
    facts = {"size": 1, "mtime_ns": 0, "sha256": "s", "sidecar": None}
    a1, a2 = (MetadataBuilder({"w": "{who}"}, t).signature("a.jpg", **facts) for t in (one, two))  # type: ignore[arg-type]
    b1, b2 = (MetadataBuilder({"w": "{who}"}, t).signature("b.jpg", **facts) for t in (one, two))  # type: ignore[arg-type]
    assert a1 == a2 and b1 != b2


def test_a_template_naming_a_column_the_table_lacks_is_refused_at_load(tmp_path: Path) -> None:
    table = gallery(tmp_path, "key,photographer\n")
    ok = make_config(
        "http://127.0.0.1:9", tmp_path, metadata={"by": "{photographer}"}, metadata_table=str(table)
    )
    assert ok.metadata_table == table and ok.table_fields == ("photographer",)
    with pytest.raises(ConfigError, match=r"metadata\.by: unknown field \{camerman\}.*\{photographer\}"):
        make_config("http://127.0.0.1:9", tmp_path, metadata={"by": "{camerman}"}, metadata_table=str(table))
    with pytest.raises(ConfigError, match=r"unknown field \{photographer\}"):  # no table, no such field
        make_config("http://127.0.0.1:9", tmp_path, metadata={"by": "{photographer}"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("key,size\n", r"column 'size' would hide the file's own \{size\}"),
        ("key,who,who\n", "column 'who' is named twice"),
        ("", "the first line must name the columns"),
        ("key,,who\n", "a column without a name"),
    ],
)
def test_a_table_whose_header_cannot_be_used_is_exit_2(tmp_path: Path, text: str, message: str) -> None:
    table = gallery(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"test\.yaml: metadata_table.*{message}"):
        make_config("http://127.0.0.1:9", tmp_path, metadata_table=str(table))


def test_a_missing_table_is_exit_2_and_a_relative_one_is_found_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"metadata_table: cannot read .*nowhere\.csv"):
        make_config("http://127.0.0.1:9", tmp_path, metadata_table=str(tmp_path / "nowhere.csv"))
    folder = tmp_path / "configs"
    folder.mkdir()
    gallery(folder, "key,who\n")
    data = config_data("http://127.0.0.1:9", tmp_path, metadata_table="gallery.csv", metadata={"w": "{who}"})
    path = write_config_file(folder / "facesync.yaml", data)
    monkeypatch.chdir(
        tmp_path
    )  # the working folder is elsewhere: as the config's other paths, it does not count
    config = load_config(path)
    assert config.metadata_table == folder.absolute() / "gallery.csv" and config.table_fields == ("who",)
