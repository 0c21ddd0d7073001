"""Checks of the built HTML book (_build/html): every toc page is there, nothing loads from the network.

Run by ``make test`` after the HTML build from the stored outputs (``CNNBIAS_REQUIRE_HTML=1``: a
missing build is then a failure).  Run alone without a build, the tests are skipped with a message.
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import booktools as book
import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"

pytestmark = pytest.mark.book


def require_html() -> Path:
    """The built book, or a skip (outside ``make test``) / failure (inside) when it is missing."""
    if not (HTML / "index.html").is_file():
        msg = f"{HTML}/index.html is missing: build the book first (make book, or make test)"
        if os.environ.get("CNNBIAS_REQUIRE_HTML") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return HTML


def test_every_toc_page_is_built() -> None:
    html = require_html()
    pages = book.toc_entries(ROOT)
    assert pages, "_toc.yml names no pages"
    missing = [str(p) for p in pages if not (html / p.with_suffix(".html")).is_file()]
    assert not missing, f"pages in _toc.yml without HTML in {html}: {missing}"
    index = (html / "index.html").read_text(encoding="utf-8")
    assert "book/intro.html" in index, "index.html does not lead to the root page book/intro.html"


def test_pages_have_no_execution_errors_or_unrendered_outputs() -> None:
    html = require_html()
    bad = []
    for p in book.toc_entries(ROOT):
        text = (html / p.with_suffix(".html")).read_text(encoding="utf-8")
        for marker in ("Traceback (most recent call last)", "CellExecutionError", "ModuleNotFoundError"):
            if marker in text:
                bad.append(f"{p}: {marker}")
    assert not bad, f"error outputs in the built pages: {bad}"


class _Refs(HTMLParser):
    """Collects the URLs a page LOADS (scripts, stylesheets, fonts, images, frames, media)."""

    LOADING: frozenset[tuple[str, str]] = frozenset({
        ("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"), ("video", "src"),
        ("audio", "src"), ("embed", "src"), ("object", "data"), ("image", "href")})

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for t, attr in self.LOADING:
            if tag == t and a.get(attr):
                self.urls.append(a[attr])
        if tag == "link" and a.get("href"):
            rel = (a.get("rel") or "").lower().split()
            # Anything a browser would fetch: stylesheets, preloads, icons, manifests.
            if set(rel) & {"stylesheet", "preload", "prefetch", "preconnect", "dns-prefetch", "icon",
                           "shortcut", "modulepreload", "manifest", "apple-touch-icon"}:
                self.urls.append(a["href"])
        for attr in ("srcset", "data-src"):
            if a.get(attr):
                self.urls.append(a[attr])


_EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.IGNORECASE)
_JS_CDN = re.compile(r"""["'`](https?://(?:cdn\.jsdelivr\.net|cdnjs\.cloudflare\.com|unpkg\.com|"""
                     r"""fonts\.googleapis\.com|fonts\.gstatic\.com|polyfill\.io)[^"'`]*)""", re.IGNORECASE)


def test_no_network_references_in_pages() -> None:
    html = require_html()
    offenders: list[str] = []
    for page in sorted(html.rglob("*.html")):
        parser = _Refs()
        text = page.read_text(encoding="utf-8", errors="replace")
        parser.feed(text)
        offenders += [f"{page.relative_to(html)}: {u}" for u in parser.urls if _EXTERNAL.match(u)]
        offenders += [f"{page.relative_to(html)}: {u}" for u in _CSS_URL.findall(text)]
    assert not offenders, "the built pages load resources from the network:\n" + "\n".join(offenders[:50])


def test_static_css_and_js_load_nothing_from_the_network() -> None:
    html = require_html()
    offenders: list[str] = []
    static = html / "_static"
    for f in sorted(static.rglob("*")):
        if f.suffix not in (".css", ".js") or "mathjax" in f.parts:
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{f.relative_to(html)}: {u}" for u in _CSS_URL.findall(text)] if f.suffix == ".css" else []
        offenders += [f"{f.relative_to(html)}: {u}" for u in _JS_CDN.findall(text)]
    assert not offenders, "theme files load from the network:\n" + "\n".join(offenders[:50])


def test_mathjax_is_local() -> None:
    html = require_html()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax bundle not copied into _static"
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    index = (html / "book" / "intro.html").read_text(encoding="utf-8")
    assert re.search(r'<script[^>]+src="[./]*_static/mathjax/tex-chtml\.js', index), \
        "intro.html does not load the local MathJax"
