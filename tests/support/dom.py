"""Find a server-rendered page's elements by their ``data-test`` attribute, with the standard
library's HTML parser: what the browser tests select, checked without a browser.

Why not a full DOM library: the pages are our own well-formed templates; the tests need each marked
element's attributes and its text, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"})


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The element's text, whitespace collapsed."""
        return " ".join("".join(self.parts).split())


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Element] = []
        self._open: list[tuple[str, Element | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        element = Element(tag, values) if "data-test" in values else None
        if element is not None:
            self.found.append(element)
        if tag not in VOID:
            self._open.append((tag, element))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            opened, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, element in self._open:
            if element is not None:
                element.parts.append(data)


def by_test(html: str, name: str) -> list[Element]:
    """Every element whose ``data-test`` is ``name``, in document order."""
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return [e for e in parser.found if e.attrs["data-test"] == name]


def one(html: str, name: str) -> Element:
    """The one element marked ``name`` (AssertionError when there are none or several)."""
    found = by_test(html, name)
    assert len(found) == 1, f"{len(found)} elements with data-test={name!r}"
    return found[0]
