"""``/docs`` (Swagger UI) and ``/redoc`` work on a host with no internet: every asset is the server's own.

Why parse the pages: a browser loads exactly what ``<script src>``, ``<link href>`` and
``<img src>`` name, so if each of those resolves to this server and is served with the right content
type, the page renders with the network cut. FastAPI's defaults pointed at a CDN (and Google Fonts),
which left both pages blank offline.
"""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from infragent.config import Settings
from infragent.server.app import create_app
from support.servers import serve

ROOT = Path(__file__).resolve().parents[3]
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


class _Assets(HTMLParser):
    """The URLs a browser fetches to render a page (scripts, stylesheets, icons, images)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        ref = found.get("src") if tag in ("script", "img") else found.get("href") if tag == "link" else None
        if ref:
            self.urls.append(ref)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> object:
    db = tmp_path_factory.mktemp("docs") / "infragent.db"
    with serve(create_app(Settings(database_url=f"sqlite:///{db}"))) as url:
        yield url


@pytest.mark.parametrize(("page", "expected"), [("/docs", 3), ("/redoc", 2)])
def test_a_docs_page_loads_every_asset_from_the_server_itself(base: str, page: str, expected: int) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        r = http.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        parser = _Assets()
        parser.feed(r.text)
        assert len(parser.urls) == expected, parser.urls  # script + stylesheet (Swagger UI) + icon
        assert "http://" not in r.text and "https://" not in r.text  # no CDN, no Google Fonts
        for ref in parser.urls:
            url = urljoin(base + page, ref)
            assert urlsplit(url).netloc == urlsplit(base).netloc, ref
            asset = http.get(url)
            assert asset.status_code == 200, ref
            suffix = Path(urlsplit(url).path).suffix
            assert asset.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], ref
            assert len(asset.content) > 0
        assert http.get("/openapi.json").status_code == 200  # what both pages render


def test_swagger_ui_asks_no_outside_validator(base: str) -> None:
    """Swagger UI would load a badge from validator.swagger.io: switched off."""
    page = httpx.get(f"{base}/docs", timeout=10).text
    assert '"validatorUrl": null' in page


def test_the_committed_assets_are_the_pinned_packages_files() -> None:
    """``scripts/docs_assets.py`` checks every vendored file against the lock's SHA-256."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs_assets.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
