"""An HTML page as the tests read it: parsed with the standard library's ``html.parser``, nothing else.

What a browser would run or fetch is collected (tags, attributes, ``src`` and ``href`` values), and
the pictures are decoded with Pillow, so a test asserts what a person would see, not how it is spelled.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image


@dataclass
class Tile:
    """One ``<figure class="tile">``: its status, title, pictures, placeholder reason and fields."""

    status: str | None
    title: str = ""
    srcs: list[str] = field(default_factory=list)
    problem: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


class Page(HTMLParser):
    """Every tag with its attributes, the visible text, the tiles, the tables and the chart's runs."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.tiles: list[Tile] = []
        self.tables: list[list[list[str]]] = []
        self.runs: list[str] = []
        self._capture: str | None = None
        self._dt = ""
        self._cell: list[str] | None = None
        self.feed(source)
        self.close()

    @classmethod
    def read(cls, path: Path) -> Page:
        return cls(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        classes = (found.get("class") or "").split()
        if tag == "figure" and "tile" in classes:
            self.tiles.append(Tile(found.get("data-status")))
        elif tag == "img" and self.tiles:
            self.tiles[-1].srcs.append(found.get("src") or "")
        elif tag == "div" and "key" in classes:
            self._capture = "title"
        elif tag == "span" and "why" in classes:
            self._capture = "problem"
        elif tag in ("dt", "dd"):
            self._capture = tag
            if tag == "dd":
                self.tiles[-1].fields[self._dt] = ""
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "g" and "run" in classes:
            self.runs.append(found.get("data-run") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("div", "span", "dt", "dd"):
            self._capture = None
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._capture == "title":
            self.tiles[-1].title += data
        elif self._capture == "problem":
            self.tiles[-1].problem = (self.tiles[-1].problem or "") + data
        elif self._capture == "dt":
            self._dt = data
        elif self._capture == "dd":
            self.tiles[-1].fields[self._dt] += data

    # -- what a browser would run or fetch --------------------------------------------------------------
    def tag_names(self) -> set[str]:
        return {name for name, _ in self.tags}

    def event_attributes(self) -> list[tuple[str, str]]:
        return [(tag, a) for tag, attrs in self.tags for a in attrs if a.lower().startswith("on")]

    def urls(self) -> list[str]:
        """Every value a browser could load or follow: ``src``, ``href``, ``xlink:href``, ``action``."""
        names = {"src", "href", "xlink:href", "action", "srcset", "poster", "data"}
        return [v or "" for _, attrs in self.tags for a, v in attrs.items() if a.lower() in names]

    def visible_text(self) -> str:
        return "".join(self.text)


def picture(uri: str) -> Image.Image:
    """The picture of a ``data:image/...;base64,`` URI, opened and fully decoded by Pillow."""
    head, sep, payload = uri.partition(",")
    assert sep and head.startswith("data:image/") and head.endswith(";base64"), uri[:60]
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise AssertionError(f"not base64: {exc}") from None
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def assert_safe(page: Page) -> None:
    """Nothing from data runs or loads: no script, no event attribute, only data: pictures and anchors."""
    assert "script" not in page.tag_names()
    assert page.event_attributes() == []
    assert all(
        url.startswith(("data:image/jpeg;base64,", "data:image/png;base64,", "#")) for url in page.urls()
    )
