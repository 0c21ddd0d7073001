"""A real browser opens the built book from file:// with the network off.

Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) loads the index and one chapter
and checks that MathJax typeset the math (``mjx-container`` elements, no raw TeX left), that every
image loaded (``naturalWidth > 0``) and that every resource came from the file system.  Screenshots go
to ``_build/screenshots/``.  Missing Chromium is a FAILURE with the install command, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import booktools as book
import pytest
from test_book_html import HTML, ROOT, require_html

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = ROOT / "_build" / "screenshots"
INSTALL = ("headless-browser test needs Debian's chromium and chromium-driver "
           "(as root: apt-get update && apt-get install -y chromium chromium-driver)")

# Raw TeX that MathJax would have replaced: $...$ / $$...$$ with a backslash command, ^ or _ inside,
# \( \) \[ \] delimiters, or common TeX commands outside any delimiter.  Applied to the visible text
# of the page after typesetting.
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\n]*(\\[A-Za-z]+|[\^_])[^$\n]*\$"
                     r"|\\(?:frac|sum|mathbb|mathcal|alpha|beta|le|ge|sigma|cdot|begin|end|left|right|text)\b")


def _chapter() -> Path:
    """One chapter page: the first toc notebook that shows math and a figure, else the first one."""
    html = require_html()
    chapters = book.chapter_notebooks(ROOT)
    assert chapters, "_toc.yml names no chapter notebooks"
    for p in chapters:
        text = (html / p.with_suffix(".html")).read_text(encoding="utf-8")
        if "<img" in text and ("math notranslate" in text or "\\(" in text):
            return p.with_suffix(".html")
    return chapters[0].with_suffix(".html")


@pytest.fixture(scope="module")
def driver():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{INSTALL}; missing: {', '.join(missing)}")
    require_html()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cnnbias-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-extensions", "--window-size=1280,1600", f"--user-data-dir={profile}",
                 # Network off: no DNS, and a proxy that refuses every connection.
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
                 "--allow-file-access-from-files"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60)
    try:
        drv.execute_cdp_cmd("Network.enable", {})
        drv.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(drv, page: Path) -> None:
    drv.get((HTML / page).resolve().as_uri())
    # MathJax 3 typesets asynchronously: wait for its startup promise, then for the fonts/images.
    drv.set_script_timeout(60)
    state = drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const t0 = Date.now();
        (function wait() {
          if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
            MathJax.startup.promise.then(() => done('typeset')).catch(e => done('error: ' + e));
          } else if (Date.now() - t0 > 30000) { done('no MathJax'); } else { setTimeout(wait, 100); }
        })();
    """)
    assert state == "typeset", f"{page}: MathJax did not finish: {state}"
    drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all([document.fonts ? document.fonts.ready : null,
                     ...Array.from(document.images).map(i => i.complete ? null :
                        new Promise(r => { i.onload = i.onerror = r; }))]).then(() => done(true));
    """)
    time.sleep(0.3)


def _check_page(drv, page: Path, expect_math: bool) -> None:
    _open(drv, page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(SHOTS / (page.as_posix().replace("/", "_") + ".png")))

    n_math = drv.execute_script("return document.querySelectorAll('mjx-container').length")
    n_src = drv.execute_script("return document.querySelectorAll('.math, span.math, div.math').length")
    if expect_math:
        assert n_math > 0, f"{page}: no mjx-container elements: MathJax typeset nothing"
    assert n_math >= n_src, f"{page}: {n_src} math elements but only {n_math} typeset"
    errors = drv.execute_script("return document.querySelectorAll('mjx-merror, [data-mjx-error]').length")
    assert errors == 0, f"{page}: {errors} MathJax errors (undefined macros or bad TeX)"
    text = drv.execute_script(
        "const m = document.querySelector('main') || document.body;"
        "const c = m.cloneNode(true); c.querySelectorAll('pre, code, mjx-container, script, style, .highlight')"
        ".forEach(e => e.remove()); return c.innerText;")
    raw = [m.group(0) for m in RAW_TEX.finditer(text)]
    assert not raw, f"{page}: raw TeX left in the rendered text: {raw[:5]}"

    images = drv.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")
    broken = [src for src, complete, width in images if not complete or not width]
    assert not broken, f"{page}: images that did not load: {broken}"

    resources = drv.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);")
    remote = [u for u in resources if not u.startswith(("file://", "data:", "blob:", "about:"))]
    assert not remote, f"{page}: resources requested from the network: {remote}"


def test_index_renders_offline(driver) -> None:
    _check_page(driver, Path("book/intro.html"), expect_math=True)
    # index.html redirects to the root page.
    driver.get((HTML / "index.html").resolve().as_uri())
    time.sleep(1.0)
    assert driver.current_url.endswith("book/intro.html"), f"index.html led to {driver.current_url}"


def test_chapter_renders_offline(driver) -> None:
    page = _chapter()
    _check_page(driver, page, expect_math=True)
    n_img = driver.execute_script("return document.images.length")
    assert n_img > 0, f"{page}: no figures"


# ---------------------------------------------------------------------------------------------
# Chapters read like a paper: nothing overflows the page horizontally, every image is a captioned
# figure.  Checked on one chapter of Part I and one of Part III, with every hidden cell opened.

LAYOUT_CHAPTERS = (Path("book/part1/tasks_and_gap.html"), Path("book/part3/xord_dynamics.html"))

_OVERFLOW_JS = """
document.querySelectorAll('details').forEach(d => { d.open = true; });
const main = document.querySelector('article.bd-article') || document.querySelector('main');
const width = main.clientWidth;
const out = [];
const label = e => (e.closest('.cell') ? 'cell ' + Array.from(document.querySelectorAll('.cell'))
  .indexOf(e.closest('.cell')) + ': ' : '') + e.tagName.toLowerCase() + '.' + e.className + ': '
  + (e.innerText || '').trim().slice(0, 60);
for (const e of main.querySelectorAll('div.cell_input pre, .highlight pre, div.cell_output pre')) {
  if (e.getClientRects().length && e.scrollWidth > e.clientWidth + 1)
    out.push(label(e) + ` (scrollWidth ${e.scrollWidth} > clientWidth ${e.clientWidth})`);
}
for (const t of main.querySelectorAll('table')) {
  const box = t.parentElement;
  if (!t.getClientRects().length) continue;
  if (t.getBoundingClientRect().width > width + 1 || box.scrollWidth > box.clientWidth + 1)
    out.push(label(t) + ` (table ${Math.round(t.getBoundingClientRect().width)}px, page ${width}px)`);
}
return out;
"""

_UNCAPTIONED_JS = """
const main = document.querySelector('article.bd-article') || document.querySelector('main');
const bad = [];
for (const img of main.querySelectorAll('img')) {
  const fig = img.closest('figure');
  const cap = fig && fig.querySelector('figcaption');
  if (!cap || !cap.innerText.trim()) bad.push(img.getAttribute('src'));
}
for (const fig of main.querySelectorAll('figure')) {
  const cap = fig.querySelector('figcaption');
  if (!cap || !cap.innerText.trim()) bad.push('figure#' + fig.id);
}
return [main.querySelectorAll('img').length, bad];
"""


def _full_page_screenshot(drv, path: Path) -> None:
    """The whole page (up to 16000 px high) as one PNG: the window is made as tall as the page."""
    size = drv.get_window_size()
    height = drv.execute_script("return document.documentElement.scrollHeight")
    try:
        drv.set_window_size(size["width"], min(int(height) + 200, 16000))
        time.sleep(0.5)
        drv.save_screenshot(str(path))
    finally:
        drv.set_window_size(size["width"], size["height"])


@pytest.mark.parametrize("page", LAYOUT_CHAPTERS, ids=str)
def test_chapter_layout_fits_and_figures_have_captions(driver, page: Path) -> None:
    require_html()
    assert (HTML / page).is_file(), f"{page} is not built"
    _open(driver, page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    stem = page.as_posix().replace("/", "_")
    # As a reader sees it (plumbing code folded away), then with every folded cell opened.
    _full_page_screenshot(driver, SHOTS / f"{stem}.paper.png")
    overflow = driver.execute_script(_OVERFLOW_JS)
    time.sleep(0.3)
    _full_page_screenshot(driver, SHOTS / f"{stem}.all-code.png")
    assert not overflow, (f"{page}: code or output wider than the page (reformat code lines to <= 100 "
                          "characters, render tables instead of fixed-width prints):\n" + "\n".join(overflow))
    n_img, uncaptioned = driver.execute_script(_UNCAPTIONED_JS)
    assert n_img > 0, f"{page}: no figures"
    assert not uncaptioned, (f"{page}: images without a figure caption (cell metadata mystnb.figure "
                             f"name + caption): {uncaptioned}")
