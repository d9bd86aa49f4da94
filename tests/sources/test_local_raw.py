"""The directory walk as the sync's march reads it (``LocalSource.scan_raw``), on real trees."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.config import SourceConfig
from pipeline.sources import SourceItem, key_order
from pipeline.sources.local import LocalSource


def source(root: Path, **kw: Any) -> LocalSource:
    return LocalSource(SourceConfig(path=root, **kw))


def write(root: Path, *keys: str) -> None:
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff" + key.encode("utf-8", "surrogateescape"))


def as_raw(item: SourceItem) -> tuple[Any, ...]:
    return (key_order(item.key), item.size, item.mtime_ns, item.etag, item.sidecar, item.special)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def busy_tree(root: Path) -> None:
    write(root, "a-c.jpg", "a/b.jpg", "a/b.jpg.json", "a/deep/er/x.PNG", "été.JPG", "z.txt", "z/y.jpeg")
    write(root, "x.jpg.json/inner.jpg", ".hidden.jpg", ".dot/in.jpg", "excluded/e.jpg")
    (root / "link.jpg").symlink_to(root / "a-c.jpg")
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    os.mkfifo(root / "pipe.jpg")
    with open(os.fsencode(root) + b"/\xff.jpg", "wb") as f:
        f.write(b"\xff\xd8\xff")


def test_scan_raw_is_the_scan_as_tuples_whatever_the_tree(tmp_path: Path) -> None:
    busy_tree(tmp_path)
    for options in ({}, {"follow_symlinks": True}, {"exclude": ("excluded/**",), "include": ("**/*",)}):
        src = source(tmp_path, **options)
        raw = list(src.scan_raw())
        assert raw == [as_raw(i) for i in source(tmp_path, **options).scan()]
        assert [r[0] for r in raw] == sorted(r[0] for r in raw)
    keys = [r[0] for r in source(tmp_path).scan_raw()]
    assert keys == [
        b"a-c.jpg",
        b"a/b.jpg",
        b"a/deep/er/x.PNG",
        b"dangling.jpg",
        b"excluded/e.jpg",
        b"link.jpg",
        b"pipe.jpg",
        b"x.jpg.json/inner.jpg",
        b"z/y.jpeg",
        "été.JPG".encode(),
        b"\xff.jpg",
    ]


def test_scan_raw_carries_the_sidecar_stamp_and_why_an_entry_is_not_a_file(tmp_path: Path) -> None:
    busy_tree(tmp_path)
    side = (tmp_path / "a/b.jpg.json").stat()
    found = {r[0]: r[4:] for r in source(tmp_path).scan_raw()}
    assert found[b"a/b.jpg"] == (f"{side.st_size}-{side.st_mtime_ns}", None)
    assert found[b"a-c.jpg"] == (None, None)
    assert found[b"link.jpg"][1] is not None and "symlink" in found[b"link.jpg"][1]
    assert found[b"pipe.jpg"] == (None, "a FIFO, not a regular file")


def test_the_walk_leaves_no_descriptor_open_finished_abandoned_or_refused(tmp_path: Path) -> None:
    write(tmp_path, *(f"d{i}/e{j}/f.jpg" for i in range(5) for j in range(3)))
    before = open_fds()
    assert sum(1 for _ in source(tmp_path).scan_raw()) == 15
    assert open_fds() == before
    walk = source(tmp_path).scan_raw()
    next(walk), next(walk)  # deep in d0/e1: three directories open
    assert len(open_fds() - before) == 3
    walk.close()
    assert open_fds() == before
    (tmp_path / "d3").chmod(0)
    try:
        src = source(tmp_path)
        keys = [r[0] for r in src.scan_raw()]
    finally:
        (tmp_path / "d3").chmod(0o755)
    assert open_fds() == before
    if os.geteuid() != 0:  # root reads any directory
        assert (len(keys), src.scan_errors) == (12, [f"{tmp_path / 'd3'}: Permission denied"])
