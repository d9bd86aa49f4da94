"""The directory source, on real trees under tmp_path."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import SourceConfig
from pipeline.errors import ScanError, Skipped
from pipeline.sources import (
    CHANGED,
    EMPTY,
    NOT_A_FILE,
    TOO_LARGE,
    UNREADABLE,
    VANISHED,
    SourceItem,
    key_order,
    open_source,
)
from pipeline.sources.local import LINKED_DIR, LocalSource

AS_ROOT = os.geteuid() == 0


def tree(root: Path, *keys: str, data: bytes = b"\xff\xd8\xffdata") -> Path:
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_raw(path: bytes, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def source(root: Path, **kw: Any) -> LocalSource:
    return LocalSource(SourceConfig(path=root, **kw))


def keys(src: LocalSource) -> list[str]:
    return [i.key for i in src.scan()]


def test_scan_yields_key_size_mtime_and_change_stamp_of_each_file(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg", "sub/b.png")
    st_a, st_b = (tmp_path / "a.jpg").stat(), (tmp_path / "sub/b.png").stat()
    assert list(source(tmp_path).scan()) == [
        SourceItem("a.jpg", st_a.st_size, st_a.st_mtime_ns, f"{st_a.st_ctime_ns}:{st_a.st_ino}"),
        SourceItem("sub/b.png", st_b.st_size, st_b.st_mtime_ns, f"{st_b.st_ctime_ns}:{st_b.st_ino}"),
    ]


@pytest.mark.parametrize(("ignore_ctime", "ignore_inode"), [(True, False), (False, True), (True, True)])
def test_the_change_stamp_leaves_out_what_the_config_ignores(
    tmp_path: Path, ignore_ctime: bool, ignore_inode: bool
) -> None:
    tree(tmp_path, "a.jpg")
    st = (tmp_path / "a.jpg").stat()
    config = SourceConfig(path=tmp_path, ignore_ctime=ignore_ctime, ignore_inode=ignore_inode)
    [item] = list(LocalSource(config).scan())
    expected = {(True, False): f":{st.st_ino}:{st.st_mtime_ns}", (False, True): f"{st.st_ctime_ns}:"}
    assert item.etag == expected.get((ignore_ctime, ignore_inode))


def test_scan_is_globally_sorted_by_key_bytes(tmp_path: Path) -> None:
    names = [
        "a-c.jpg",
        "a/b.jpg",
        "a.jpg",
        "a0.jpg",
        "B.jpg",
        "b/x/y.jpg",
        "b/x-z.jpg",
        "é.jpg",
        "z.jpg",
        "a/a/a.jpg",
    ]
    tree(tmp_path, *names)
    got = keys(source(tmp_path))
    assert got == sorted(names, key=key_order)
    assert got.index("a-c.jpg") < got.index("a/b.jpg")


def test_hidden_files_and_folders_are_skipped(tmp_path: Path) -> None:
    tree(tmp_path, ".hidden.jpg", ".cache/a.jpg", "ok/.x.jpg", "ok/y.jpg")
    assert keys(source(tmp_path)) == ["ok/y.jpg"]


def test_extensions_filter_is_case_insensitive(tmp_path: Path) -> None:
    tree(tmp_path, "a.JPG", "b.Png", "c.txt", "d", "e.jpeg")
    assert keys(source(tmp_path)) == ["a.JPG", "b.Png", "e.jpeg"]
    assert keys(source(tmp_path, extensions=(".png",))) == ["b.Png"]


def test_a_directory_named_like_an_image_is_walked(tmp_path: Path) -> None:
    tree(tmp_path, "x.jpg/inner.jpg")
    assert keys(source(tmp_path)) == ["x.jpg/inner.jpg"]


def test_include_and_exclude_globs_match_the_key(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg", "2020/b.jpg", "2020/raw/c.jpg", "2021/d.jpg", "tmp/e.jpg", "tmp/deep/f.jpg")
    assert keys(source(tmp_path, include=("2020/*",))) == ["2020/b.jpg"]
    assert keys(source(tmp_path, include=("2020/**",))) == ["2020/b.jpg", "2020/raw/c.jpg"]
    assert keys(source(tmp_path, exclude=("tmp/**", "**/raw/*"))) == ["2020/b.jpg", "2021/d.jpg", "a.jpg"]
    assert keys(source(tmp_path, include=("**/*.jpg",), exclude=("20*/*",))) == [
        "2020/raw/c.jpg", "a.jpg", "tmp/deep/f.jpg", "tmp/e.jpg",
    ]  # fmt: skip


def test_symlinks_are_skipped_by_default(tmp_path: Path) -> None:
    root = tree(tmp_path / "root", "real/a.jpg")
    tree(tmp_path / "outside", "o.jpg")
    (root / "link.jpg").symlink_to(root / "real/a.jpg")
    (root / "linkdir").symlink_to(tmp_path / "outside")
    (root / "notes.txt").symlink_to(root / "real/a.jpg")
    found = {i.key: i.special for i in source(root).scan()}
    # Not followed, not read: the photo-named link and the link to a directory are reported (skipped with
    # their reason); a link to a file that is no photo is not (no more than the file would be).
    assert LINKED_DIR.startswith("a symlink to a directory, not followed (set source.follow_symlinks: true")
    assert found == {
        "link.jpg": "a symlink, not followed (set source.follow_symlinks: true to follow links)",
        "linkdir": LINKED_DIR,
        "real/a.jpg": None,
    }


def test_a_link_to_a_directory_is_reported_in_key_order_unless_an_exclude_prunes_it(tmp_path: Path) -> None:
    root = tree(tmp_path / "root", "a.jpg", "b.jpg", "b0.jpg", "c/x.jpg")
    tree(tmp_path / "outside", "o.jpg")
    (root / "b").symlink_to(tmp_path / "outside")
    (root / "c" / "up").symlink_to(root)
    (root / "c" / "dangling").symlink_to(root / "nowhere")
    assert keys(source(root)) == ["a.jpg", "b", "b.jpg", "b0.jpg", "c/up", "c/x.jpg"]
    assert keys(source(root, exclude=("c/up/**", "b/**"))) == ["a.jpg", "b.jpg", "b0.jpg", "c/x.jpg"]


def test_followed_symlinks_never_loop_and_broken_links_are_reported(tmp_path: Path) -> None:
    root = tree(tmp_path / "root", "real/a.jpg")
    tree(tmp_path / "outside", "o.jpg")
    (root / "link.jpg").symlink_to(root / "real/a.jpg")
    (root / "linkdir").symlink_to(tmp_path / "outside")
    (root / "real" / "loop").symlink_to(root)
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    (root / "self.jpg").symlink_to(root / "self.jpg")
    src = source(root, follow_symlinks=True)
    found = {i.key: i.special for i in src.scan()}
    assert list(found) == ["dangling.jpg", "link.jpg", "linkdir/o.jpg", "real/a.jpg", "self.jpg"]
    assert found["link.jpg"] is None and found["linkdir/o.jpg"] is None
    assert "cannot be followed" in (found["dangling.jpg"] or "")
    assert "cannot be followed" in (found["self.jpg"] or "")
    assert src.scan_errors == []


def test_non_utf8_names_become_lossless_keys_and_read_back(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    write_raw(raw, b"\xff\xd8\xffbytes")
    src = source(tmp_path)
    [found] = list(src.scan())
    assert found.key == "caf\udce9.jpg"
    assert key_order(found.key) == b"caf\xe9.jpg"
    assert os.fsencode(src.local_path(found.key)) == raw


async def test_read_of_a_non_utf8_name(tmp_path: Path) -> None:
    write_raw(os.fsencode(tmp_path) + b"/\xff\xfe.jpg", b"\xff\xd8\xffbytes")
    src = source(tmp_path)
    [found] = list(src.scan())
    assert await src.read(found, 1000) == b"\xff\xd8\xffbytes"


def test_missing_root_is_a_scan_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match=f"directory {tmp_path / 'nope'}: cannot list"):
        list(source(tmp_path / "nope").scan())


def test_root_that_is_a_file_is_a_scan_error_at_once(tmp_path: Path) -> None:
    tree(tmp_path, "f.jpg")
    src = source(tmp_path / "f.jpg")
    with pytest.raises(ScanError, match="not a directory"):
        src.scan()


def test_unreadable_subdirectory_is_recorded_and_the_scan_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree(tmp_path, "a/x.jpg", "locked/y.jpg", "z.jpg")
    locked = os.fsencode(tmp_path / "locked")
    real_scandir: Callable[..., Any] = os.scandir

    def scandir(path: Any) -> Any:
        if path == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    src = source(tmp_path)
    assert keys(src) == ["a/x.jpg", "z.jpg"]
    assert src.scan_errors == [f"{tmp_path / 'locked'}: Permission denied"]


@pytest.mark.skipif(AS_ROOT, reason="root reads any directory")
def test_unreadable_subdirectory_by_mode(tmp_path: Path) -> None:
    tree(tmp_path, "locked/y.jpg", "z.jpg")
    (tmp_path / "locked").chmod(0)
    try:
        src = source(tmp_path)
        assert (keys(src), src.scan_errors) == (["z.jpg"], [f"{tmp_path / 'locked'}: Permission denied"])
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_file_vanishing_between_listing_and_stat_is_not_yielded(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg", "b.jpg", "c.jpg")
    scan = source(tmp_path).scan()
    assert next(scan).key == "a.jpg"
    (tmp_path / "b.jpg").unlink()
    assert [i.key for i in scan] == ["c.jpg"]


def test_scan_is_lazy_and_holds_only_the_current_path(tmp_path: Path) -> None:
    tree(tmp_path, *(f"d{i:03d}/f{j}.jpg" for i in range(200) for j in range(5)))
    scan = source(tmp_path).scan()
    assert next(scan).key == "d000/f0.jpg"
    assert sum(1 for _ in scan) == 999


def test_open_source_builds_a_local_source(tmp_path: Path) -> None:
    src = open_source(SourceConfig(path=tmp_path))
    assert isinstance(src, LocalSource)
    assert (src.description, src.scan_errors, src.local_path("a/b.jpg")) == (
        f"directory {tmp_path}", [], tmp_path / "a" / "b.jpg",
    )  # fmt: skip


# -- read ----------------------------------------------------------------------------------------------


def scanned(root: Path, key: str) -> SourceItem:
    [found] = [i for i in source(root).scan() if i.key == key]
    return found


async def test_read_returns_the_bytes(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg", data=b"\xff\xd8\xff" + b"x" * 5000)
    src = source(tmp_path)
    assert await src.read(scanned(tmp_path, "a.jpg"), 10_000) == b"\xff\xd8\xff" + b"x" * 5000
    await src.close()


async def test_read_refuses_too_large_without_opening(tmp_path: Path) -> None:
    item = SourceItem("not-even-there.jpg", 2000, 1)
    with pytest.raises(Skipped) as caught:
        await source(tmp_path).read(item, 1000)
    assert (caught.value.reason, caught.value.detail) == (TOO_LARGE, "2000 bytes > limit 1000")


async def test_read_of_a_vanished_file(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg")
    item = scanned(tmp_path, "a.jpg")
    (tmp_path / "a.jpg").unlink()
    with pytest.raises(Skipped) as caught:
        await source(tmp_path).read(item, 1000)
    assert (caught.value.reason, caught.value.detail) == (VANISHED, "gone since the scan")


@pytest.mark.parametrize("change", ["size", "mtime"])
async def test_read_of_a_file_changed_since_the_scan(tmp_path: Path, change: str) -> None:
    tree(tmp_path, "a.jpg")
    item = scanned(tmp_path, "a.jpg")
    if change == "size":
        (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xffdifferent length")
    else:
        os.utime(tmp_path / "a.jpg", ns=(item.mtime_ns + 10**9, item.mtime_ns + 10**9))
    with pytest.raises(Skipped) as caught:
        await source(tmp_path).read(item, 1000)
    assert caught.value.reason == CHANGED


async def test_read_of_an_empty_file(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg", data=b"")
    with pytest.raises(Skipped) as caught:
        await source(tmp_path).read(scanned(tmp_path, "a.jpg"), 1000)
    assert (caught.value.reason, caught.value.detail) == (EMPTY, "0 bytes")


async def test_read_of_a_path_that_became_a_directory(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg")
    item = scanned(tmp_path, "a.jpg")
    (tmp_path / "a.jpg").unlink()
    (tmp_path / "a.jpg").mkdir()
    with pytest.raises(Skipped) as caught:
        await source(tmp_path).read(item, 1000)
    assert caught.value.reason == NOT_A_FILE


async def test_read_of_a_path_that_became_a_fifo_does_not_hang(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg")
    item = scanned(tmp_path, "a.jpg")
    (tmp_path / "a.jpg").unlink()
    os.mkfifo(tmp_path / "a.jpg")
    with pytest.raises(Skipped) as caught:
        await source(tmp_path).read(item, 1000)
    assert caught.value.reason == NOT_A_FILE


async def test_read_of_an_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree(tmp_path, "a.jpg")
    item = scanned(tmp_path, "a.jpg")
    if AS_ROOT:
        real_open = os.open

        def deny(path: Any, flags: int, *args: Any) -> int:
            if path == os.fsencode(tmp_path / "a.jpg"):
                raise PermissionError(13, "Permission denied")
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", deny)
    else:
        (tmp_path / "a.jpg").chmod(0)
    with pytest.raises(Skipped) as caught:
        await source(tmp_path).read(item, 1000)
    assert (caught.value.reason, caught.value.detail) == (UNREADABLE, "Permission denied")


async def test_read_does_not_follow_a_symlink_swapped_in_unless_configured(tmp_path: Path) -> None:
    tree(tmp_path, "a.jpg", "real.jpg")
    item = scanned(tmp_path, "a.jpg")
    (tmp_path / "a.jpg").unlink()
    (tmp_path / "a.jpg").symlink_to(tmp_path / "real.jpg")
    with pytest.raises(Skipped) as caught:
        await source(tmp_path).read(item, 1000)
    assert caught.value.reason == UNREADABLE


segment = st.text(alphabet=st.sampled_from("ab-_0é~"), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(segment, min_size=1, max_size=3), min_size=1, max_size=15))
def test_any_tree_scans_in_key_order(paths: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = set()
        for parts in paths:
            key = "/".join(parts) + ".jpg"
            try:
                tree(root, key)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue
            made.add(key)
        assert keys(source(root)) == sorted(made, key=key_order)
