"""Thumbnails for the HTML pages: a picture Pillow can open for every file, whatever the file is.

Real files on a real filesystem: photos of several formats, broken ones, a FIFO, symlinks.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from pipeline.output.thumbs import GRID_PX, LARGE_PX, NO_LOCAL_FILE, placeholder, thumbnails
from tests.htmlpage import picture
from tests.imagefactory import (
    image_for,
    jpeg_bytes,
    make_empty,
    make_text_as_jpeg,
    make_truncated_jpeg,
    zero_by_zero_png,
)


def test_a_big_jpeg_becomes_a_small_upright_jpeg_within_the_box(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: the picture is stored on its side
    image_for(3, (3000, 2000)).save(buf, "JPEG", quality=90, exif=exif)
    big.write_bytes(buf.getvalue())

    (thumb,) = thumbnails([big])

    shown = picture(thumb.uri)
    assert thumb.problem is None and shown.format == "JPEG" and shown.mode == "RGB"
    assert shown.size == (thumb.width, thumb.height) == (GRID_PX * 2 // 3, GRID_PX)  # upright: taller


@pytest.mark.parametrize("name", ["a.png", "b.gif", "c.webp", "d.bmp"])
def test_other_formats_with_or_without_transparency_become_jpeg_thumbnails(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    img = image_for(5, (400, 300)).convert("RGBA")
    img.putpixel((0, 0), (0, 0, 0, 0))
    (img if name.endswith((".png", ".webp")) else img.convert("RGB")).save(path)

    (thumb,) = thumbnails([path], LARGE_PX)

    assert thumb.problem is None
    assert picture(thumb.uri).size == (LARGE_PX, LARGE_PX * 3 // 4)


def test_every_file_that_is_no_picture_gets_a_placeholder_pillow_can_open_and_a_reason(
    tmp_path: Path,
) -> None:
    make_truncated_jpeg(tmp_path / "cut.jpg", seed=1, size=(300, 200))
    make_text_as_jpeg(tmp_path / "notes.jpg")
    make_empty(tmp_path / "empty.jpg")
    (tmp_path / "zero.png").write_bytes(zero_by_zero_png())
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would block without O_NONBLOCK
    (tmp_path / "folder.jpg").mkdir()
    paths = [
        tmp_path / n for n in ("cut.jpg", "notes.jpg", "empty.jpg", "zero.png", "pipe.jpg", "folder.jpg")
    ]

    thumbs = thumbnails([*paths, tmp_path / "gone.jpg", None])

    assert [t.problem for t in thumbs] == [
        "cannot be decoded",
        "cannot be decoded",
        "an empty file",
        "cannot be decoded",
        "not a regular file",
        "not a regular file",
        "the file is gone",
        NO_LOCAL_FILE,
    ]
    for thumb in thumbs:
        assert picture(thumb.uri).size == (thumb.width, thumb.height) == (GRID_PX, GRID_PX * 3 // 4)


def test_a_symlink_is_followed_only_when_the_source_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "private.jpg"
    outside.write_bytes(jpeg_bytes(2))
    (tmp_path / "archive").mkdir()
    link = tmp_path / "archive" / "link.jpg"
    link.symlink_to(outside)

    (refused,) = thumbnails([link])
    (followed,) = thumbnails([link], follow_symlinks=True)

    assert refused.problem == "a symlink (not followed)"
    assert followed.problem is None and picture(followed.uri).format == "JPEG"


def test_a_picture_with_more_pixels_than_pillow_allows_is_a_placeholder_not_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)
    image_for(1, (100, 100)).save(tmp_path / "warns.png")  # 10,000 pixels: Pillow warns
    image_for(1, (200, 200)).save(tmp_path / "refused.png")  # over twice the limit: Pillow refuses
    image_for(1, (50, 50)).save(tmp_path / "fine.png")

    thumbs = thumbnails([tmp_path / "warns.png", tmp_path / "refused.png", tmp_path / "fine.png"])

    assert [t.problem for t in thumbs] == ["too many pixels to preview", "too many pixels to preview", None]


def test_thumbnails_keep_the_order_of_their_paths_across_the_thread_pool(tmp_path: Path) -> None:
    sizes = [(40 + i, 30 + 2 * i) for i in range(24)]
    paths = []
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(jpeg_bytes(i, size))

    thumbs = thumbnails(paths)

    assert [(t.width, t.height) for t in thumbs] == sizes  # small pictures are never enlarged


def test_the_placeholder_is_one_small_png_shared_by_every_use() -> None:
    a, b = placeholder("x"), placeholder("y", GRID_PX)
    assert a.uri == b.uri and a.uri.startswith("data:image/png;base64,")
    assert len(a.uri) < 2000
    assert (a.problem, b.problem) == ("x", "y")
