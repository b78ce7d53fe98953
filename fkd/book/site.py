"""The rendered book, checked in a real browser (headless Chromium driven by Playwright).

``check_site(html_dir)`` opens every chapter page of a built book (``jupyter-book build .``) at a
reader's width with every request that is not ``file:`` or ``data:`` blocked and counted, and
reports, per page, what a reader would see wrong (``RULES``): a network request, a figure that does
not load or has no numbered caption, fewer figures than the executed notebook produced, ``NaN`` or
pandas' truncation in a table, a table wider than the text column, a raw Python repr or a traceback
in an output, TeX left as text, a kernel-free explorer whose JavaScript did not run.
``screenshot`` saves a page as PNG (the README's picture of Motivation). Chromium comes from Debian
(``apt install chromium``); set ``FKD_CHROMIUM`` to use another binary.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from fkd.book.reproduce import chapters
from fkd.paths import CHAPTERS, SITE

#: what a closed network needs: no background requests, no sandbox as root, no GPU
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: the reader's window (CSS pixels)
VIEWPORT = {"width": 1400, "height": 900}
ERROR_MARKERS = ("Traceback (most recent call last)",)
#: what a raw repr looks like in an output: a dataclass, an enum member, an object address, a quoted string
REPR_PATTERNS = {
    "dataclass repr": re.compile(r"\b[A-Z]\w*\([a-z_]\w*="),
    "enum repr": re.compile(r"<\w+\.\w+: [^>]*>"),
    "object repr": re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>|<Figure size [^>]*>"),
    "quoted string": re.compile(r"^\s*(['\"]).*\1\s*$", re.S),
}
TRUNCATION = re.compile(r"\b\d+ rows [×x] \d+ columns\b")
#: one rule per problem a page can have; ``PageReport.problems`` start with one of these
RULES = ("network request", "figure does not load", "figures shown", "figure without a numbered caption", "NaN",
         "pandas truncation", "table wider than the text column", "raw repr", "error output", "equations not typeset",
         "no title", "kernel-free explorer")

# the page's reading column, its outputs' text (code inputs and scripts left out) and its tables
_PAGE_JS = """() => {
  const col = document.querySelector('article') || document.querySelector('main') || document.body;
  const width = col.getBoundingClientRect().width;
  const text = col.cloneNode(true);
  text.querySelectorAll('.cell_input, script, style, mjx-container, p code, li code, td code').forEach(e => e.remove());
  text.querySelectorAll('td, th, p, li, pre, div').forEach(e => e.append(' '));  // a detached clone has no layout
  const imgs = Array.from(col.querySelectorAll('img')).map(i => {
    const fig = i.closest('figure'), cap = fig && fig.querySelector('figcaption');
    return {ok: i.complete && i.naturalWidth > 0, src: (i.getAttribute('src') || '').slice(0, 60),
            explorer: !!i.closest('.fkd-explorer'),
            caption: cap ? cap.innerText.trim() : ''};
  });
  const tables = Array.from(col.querySelectorAll('table')).map(t => ({
    width: t.getBoundingClientRect().width,
    caption: (t.querySelector('caption') || t.querySelector('th') || {innerText: ''}).innerText.trim().slice(0, 50),
    dots: Array.from(t.querySelectorAll('th, td')).some(c => ['...', '\\u2026'].includes(c.innerText.trim()))}));
  const plain = Array.from(col.querySelectorAll('.cell_output .text_plain pre, .cell_output pre'))
    .map(p => p.innerText);
  return {width, text: text.innerText, imgs, tables, plain};
}"""


def chromium() -> str:
    """Path of the Chromium binary; FileNotFoundError naming the fix if there is none."""
    path = os.environ.get("FKD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise FileNotFoundError("no Chromium found. Fix: `apt install chromium` (Debian), or set FKD_CHROMIUM "
                                "to a Chromium binary")
    return path


@dataclass
class PageReport:
    """One chapter page: figures expected (image outputs of its executed notebook) and seen, network
    requests blocked, problems (each starts with one of ``RULES``)."""
    chapter: str
    expected_figures: int
    figures: int
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def expected_figures(chapter: str, build: Path) -> int:
    """Image outputs of the chapter as jupyter-book executed it (its cache in ``_build/.jupyter_cache``)."""
    from jupyter_cache import get_cache

    source = (CHAPTERS / f"{chapter}.ipynb").resolve()
    cache = get_cache(build / ".jupyter_cache")
    records = [r for r in cache.list_cache_records() if Path(r.uri).resolve() == source]
    if not records:
        return 0  # a Markdown page, or a notebook the build did not execute
    nb = cache.get_cache_bundle(max(records, key=lambda r: r.created).pk).nb
    kinds = ("image/png", "application/papermill.record/image/png")  # shown, or glued for a captioned figure
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if any(k in o.get("data", {}) for k in kinds))


def block_network(page) -> list[str]:
    """Block every request of ``page`` that is not ``file:`` or ``data:``; returns the list the
    blocked URLs are appended to."""
    blocked: list[str] = []

    def handle(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "about:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", handle)
    return blocked


def _content_problems(seen: dict) -> list[str]:
    """Problems of the page's reading column as ``_PAGE_JS`` saw it (figures, tables, text)."""
    problems = [f"figure does not load: {i['src']}" for i in seen["imgs"] if not i["ok"] and not i["explorer"]]
    problems += [f"figure without a numbered caption: {i['src']}" for i in seen["imgs"]
                 if not i["explorer"] and not re.match(r"(Fig\.|Figure) \d+", i["caption"])]
    text = seen["text"]
    if re.search(r"\bNaN\b", text):
        problems.append("NaN shown: " + text[max(0, text.find("NaN") - 40):text.find("NaN") + 10].replace("\n", " "))
    if TRUNCATION.search(text) or any(t["dots"] for t in seen["tables"]):
        problems.append("pandas truncation: a table shows '...' or 'N rows x M columns'")
    problems += [f"table wider than the text column: {t['width']:.0f} px > {seen['width']:.0f} px ({t['caption']!r})"
                 for t in seen["tables"] if t["width"] > seen["width"] + 1]
    for out in seen["plain"]:
        for name, pattern in REPR_PATTERNS.items():
            if pattern.search(out):
                problems.append(f"raw repr ({name}) in an output: {out.strip()[:60]!r}")
                break
    problems += [f"error output: {m}" for m in ERROR_MARKERS if m in text]
    return problems


def check_page(page, url: str, chapter: str, expected: int) -> PageReport:
    """Open ``url`` in a Playwright ``page`` (network blocked) and report what is wrong with it
    (see the module doc and ``RULES``)."""
    page.unroute("**/*")
    blocked = block_network(page)
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)  # let the page's own scripts (the explorer) run
    seen = page.evaluate(_PAGE_JS)
    figures = [i for i in seen["imgs"] if not i["explorer"]]
    report = PageReport(chapter, expected, len(figures))
    report.problems += _content_problems(seen)
    if len(figures) < expected:
        report.problems.append(f"figures shown: {len(figures)}, the executed notebook made {expected}")
    prose = page.evaluate("""() => { const m = (document.querySelector('main') || document.body).cloneNode(true);
        m.querySelectorAll('pre, code, .cell_output, mjx-container, script').forEach(e => e.remove());
        return m.innerText; }""")
    if any(t in prose for t in ("\\(", "\\[", "$")):  # TeX left as text: MathJax did not load or did not parse
        report.problems.append("equations not typeset: TeX shows as text")
    n_errors = page.evaluate("() => document.querySelectorAll('.output.error, .output.traceback').length")
    if n_errors:
        report.problems.append(f"error output: {n_errors} error outputs")
    if not page.query_selector("h1"):
        report.problems.append("no title (h1)")
    for ex in page.query_selector_all(".fkd-explorer"):  # the kernel-free explorer must respond
        frame = ex.query_selector("img.frame")
        before = frame.get_attribute("src") or ""
        if not before.startswith("data:image/png"):
            report.problems.append("kernel-free explorer: no frame shown (its script did not run)")
            continue
        ex.query_selector("input.eps").evaluate("s => { s.value = s.max; s.dispatchEvent(new Event('input')); }")
        if frame.get_attribute("src") == before:
            report.problems.append("kernel-free explorer: moving the eps slider did not change the frame")
    report.requests = list(blocked)
    report.problems += [f"network request: {u[:100]}" for u in blocked]
    return report


def open_browser(p):
    """Headless Chromium from Playwright ``p`` and a page at the reader's width (``VIEWPORT``)."""
    browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
    return browser, browser.new_page(viewport=VIEWPORT)


def check_site(html_dir: Path | str = SITE) -> list[PageReport]:
    """Open every chapter of the built book in headless Chromium; one PageReport per chapter.

    Raises FileNotFoundError naming the fix if the book is not built.
    """
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir)
    build = html_dir.parent
    names = [c.stem for c in chapters()] + ["model-zoo"]
    missing = [n for n in names if not (html_dir / "book" / f"{n}.html").exists()]
    if missing:
        raise FileNotFoundError(f"pages {', '.join(missing)} are not in {html_dir}. Fix: build the book "
                                "(`make book`, or `jupyter-book build .`)")
    with sync_playwright() as p:
        browser, page = open_browser(p)
        reports = [check_page(page, (html_dir / "book" / f"{n}.html").resolve().as_uri(), n,
                              expected_figures(n, build)) for n in names]
        browser.close()
    return reports


def screenshot(page_html: Path | str, png: Path | str, width: int = 1200, height: int = 1700) -> Path:
    """Save a built page as seen in headless Chromium (``width`` x ``height`` CSS pixels, network blocked)."""
    from playwright.sync_api import sync_playwright

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        block_network(page)
        page.goto(Path(page_html).resolve().as_uri(), wait_until="load")
        page.wait_for_timeout(500)
        page.screenshot(path=str(png))
        browser.close()
    return png
