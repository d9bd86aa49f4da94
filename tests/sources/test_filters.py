"""Key filtering, one rule for both sources: globs to regexes, include / exclude / extensions."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import SourceConfig
from pipeline.sources import key_order
from pipeline.sources.filters import KeyFilter, glob_to_regex
from pipeline.sources.local import LocalSource

#: A tree to filter: cases, extensions, nesting, and directories worth pruning.
KEYS = [
    "a.jpg",
    "A.JPG",
    "a.txt",
    "noext",
    "2020/b.jpg",
    "2020/raw/c.png",
    "2020/raw/d/e.jpg",
    "2021/xy/f.jpeg",
    "tmp/g.jpg",
    "tmp/deep/h.jpg",
    "x/deep/i.PNG",
]


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("*.jpg", ["a.jpg", ".jpg"], ["d/a.jpg"]),
        ("**/*.jpg", ["a.jpg", "d/a.jpg", "d/e/a.jpg"], ["a.png"]),
        ("d/**", ["d/a", "d/e/f"], ["d", "e/d/a"]),
        ("d/**/x", ["d/x", "d/e/x", "d/e/f/x"], ["dx", "d/ex"]),
        ("?.jpg", ["a.jpg"], ["ab.jpg", "/.jpg"]),
        ("[ab].jpg", ["a.jpg", "b.jpg"], ["c.jpg"]),
        ("[!ab].jpg", ["c.jpg"], ["a.jpg"]),
        ("a+b(1).jpg", ["a+b(1).jpg"], ["aab1.jpg"]),
    ],
)
def test_glob_translation(glob: str, matches: list[str], misses: list[str]) -> None:
    pattern = glob_to_regex(glob)
    assert [bool(pattern.fullmatch(k)) for k in matches + misses] == [True] * len(matches) + [False] * len(
        misses
    )


def test_key_filter_globs_on_segments_and_ignores_extension_case() -> None:
    wanted = KeyFilter((), ("**/tmp/**", "**/*.part.jpg"), (".jpg",))
    assert wanted("a/B.JPG")
    assert wanted("top.jpg")
    assert not wanted("a/tmp/b.jpg")
    assert not wanted("tmp/b.jpg")
    assert not wanted("x/y/z.part.jpg")
    assert not wanted("a/b.txt")
    assert not wanted("folder.jpg/")
    only_2024 = KeyFilter(("2024/**",), (), ())
    assert only_2024("2024/05/a.png")
    assert not only_2024("2023/a.png")


def test_only_whole_directory_excludes_prune() -> None:
    wanted = KeyFilter((), ("tmp/**", "**/cache/**", "*.part", "raw/*"), ())
    assert wanted.prune is not None
    pruned = [d for d in ("tmp", "a/cache", "cache", "raw", "x.part", "tmpx") if wanted.prune.fullmatch(d)]
    assert pruned == ["tmp", "a/cache", "cache"]
    assert KeyFilter((), ("*.part",), ()).prune is None


@pytest.mark.parametrize(
    ("include", "exclude", "extensions"),
    [
        ((), (), (".jpg", ".png")),
        (("2020/**",), ("**/raw/**",), (".jpg",)),
        (("**/*.JPG", "a*"), ("tmp/**", "**/x?/*"), (".JPG", ".jpeg")),
        ((), ("**/deep/**", "*/b.*"), ()),
    ],
)
def test_the_directory_walks_inlined_filters_keep_exactly_what_key_filter_keeps(
    tmp_path: Path, include: tuple[str, ...], exclude: tuple[str, ...], extensions: tuple[str, ...]
) -> None:
    for key in KEYS:
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"x")
    config = SourceConfig(path=tmp_path, include=include, exclude=exclude, extensions=extensions)
    walked = [item.key for item in LocalSource(config).scan()]
    assert walked == sorted(filter(KeyFilter(include, exclude, extensions), KEYS), key=key_order)
