"""Reading a rendered run report in tests: every element with an id, the charts (every
element inside each <svg>, with the ids of the groups around it) and the rows of each
table as cell texts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any


@dataclass
class Element:
    """An element inside a chart's <svg>: its attributes, the ids of the <g> elements
    around it, and its text."""

    tag: str
    attrs: dict[str, str]
    groups: tuple[str, ...]
    text: str = ""


@dataclass
class Chart:
    attrs: dict[str, str]
    elements: list[Element] = field(default_factory=list)

    def group(self, gid: str) -> list[Element]:
        """The elements of the chart's group `gid` (ids are prefixed with the chart's)."""
        full = f"{self.attrs['id']}-{gid}"
        return [e for e in self.elements if full in e.groups]

    def has(self, gid: str) -> bool:
        return any(e.attrs.get("id") == f"{self.attrs['id']}-{gid}" for e in self.elements)

    def text(self, gid: str) -> Element:
        (found,) = [e for e in self.group(gid) if e.tag == "text"]
        return found

    def box(self, gid: str) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1) of the path of the group `gid` (SVG y grows downwards)."""
        (path,) = [e for e in self.group(gid) if e.tag == "path"]
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path.attrs["d"])]
        xs, ys = numbers[0::2], numbers[1::2]
        return min(xs), max(xs), min(ys), max(ys)

    def style(self, gid: str, name: str) -> str:
        (path,) = [e for e in self.group(gid) if e.tag == "path"]
        return dict(part.strip().split(": ") for part in path.attrs["style"].split(";"))[name]

    def texts(self) -> list[str]:
        return [e.text for e in self.elements if e.tag == "text"]


class Page(HTMLParser):
    """The parts of the page the tests look at: every element with an id, the charts
    (every element inside each <svg>), and the rows of each table as cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, Any]] = {}
        self.charts: dict[str, Chart] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[str] = []
        self._chart: Chart | None = None
        self._open: list[Element] = []  # inside a chart, the open elements
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "id" in attributes:
            assert attributes["id"] not in self.ids, f"id {attributes['id']} twice"
            self.ids[attributes["id"]] = {"tag": tag, **attributes}
        if tag == "svg":
            self._chart = self.charts[attributes.get("id", "")] = Chart(attributes)
        elif self._chart is not None:
            groups = tuple(e.attrs["id"] for e in self._open
                           if e.tag == "g" and "id" in e.attrs)
            element = Element(tag, attributes, groups)
            self._chart.elements.append(element)
            self._open.append(element)
        if tag == "table":
            self._table = attributes.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        elif self._chart is not None:
            assert self._open and self._open[-1].tag == tag, (tag, self._open[-1:])
            self._open.pop()
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._open and self._open[-1].tag == "text":
            self._open[-1].text += data


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    return parsed
