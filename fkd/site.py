"""The rendered book, checked in a real browser (headless Chromium driven by Playwright).

``check_site(html_dir)`` opens every chapter page of a built book (``jupyter-book build .``) and
reports, per page, what a reader would see wrong: a figure that does not load, fewer figures than
the executed notebook produced, an error or traceback in an output, a kernel-free explorer whose
JavaScript did not run. ``screenshot`` saves a page as PNG (the README's picture of Motivation).
Chromium comes from Debian (``apt install chromium``); set ``FKD_CHROMIUM`` to use another binary.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .reproduce import ROOT, chapters

#: what a closed network needs: no background requests, no sandbox as root, no GPU
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ERROR_MARKERS = ("Traceback (most recent call last)",)


def chromium() -> str:
    """Path of the Chromium binary; FileNotFoundError naming the fix if there is none."""
    path = os.environ.get("FKD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise FileNotFoundError("no Chromium found. Fix: `apt install chromium` (Debian), or set FKD_CHROMIUM "
                                "to a Chromium binary")
    return path


@dataclass
class PageReport:
    """One chapter page: figures expected (image outputs of its executed notebook) and seen, problems."""
    chapter: str
    expected_figures: int
    figures: int
    problems: list[str] = field(default_factory=list)


def expected_figures(chapter: str, build: Path) -> int:
    """Image outputs of the chapter as jupyter-book executed it (its cache in ``_build/.jupyter_cache``)."""
    from jupyter_cache import get_cache

    source = (ROOT / "book" / f"{chapter}.ipynb").resolve()
    cache = get_cache(build / ".jupyter_cache")
    records = [r for r in cache.list_cache_records() if Path(r.uri).resolve() == source]
    if not records:
        return 0  # a Markdown page, or a notebook the build did not execute
    nb = cache.get_cache_bundle(max(records, key=lambda r: r.created).pk).nb
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


def check_page(page, url: str, chapter: str, expected: int) -> PageReport:
    """Open ``url`` in a Playwright ``page`` and report what is wrong with it (see the module doc)."""
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)  # let the page's own scripts (the explorer) run
    imgs = page.evaluate("""() => Array.from(document.querySelectorAll('.cell_output img, .fkd-explorer img'))
        .map(i => ({ok: i.complete && i.naturalWidth > 0, src: (i.getAttribute('src') || '').slice(0, 60),
                    explorer: !!i.closest('.fkd-explorer')}))""")
    figures = [i for i in imgs if not i["explorer"]]
    report = PageReport(chapter, expected, len(figures))
    report.problems += [f"figure does not load: {i['src']}" for i in imgs if not i["ok"]]
    if len(figures) < expected:
        report.problems.append(f"{len(figures)} figures shown, the executed notebook made {expected}")
    text = page.inner_text("main") if page.query_selector("main") else page.inner_text("body")
    report.problems += [f"error output: {m}" for m in ERROR_MARKERS if m in text]
    prose = page.evaluate("""() => { const m = (document.querySelector('main') || document.body).cloneNode(true);
        m.querySelectorAll('pre, code, .cell_output, mjx-container, script').forEach(e => e.remove());
        return m.innerText; }""")
    if any(t in prose for t in ("\\(", "\\[", "$")):  # TeX left as text: MathJax did not load or did not parse
        report.problems.append("equations not typeset: TeX shows as text")
    n_errors = page.evaluate("() => document.querySelectorAll('.output.error, .output.traceback').length")
    if n_errors:
        report.problems.append(f"{n_errors} error outputs")
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
    return report


def check_site(html_dir: Path | str = ROOT / "_build" / "html") -> list[PageReport]:
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
                                "(`make site`, or `jupyter-book build .`)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        reports = [check_page(page, (html_dir / "book" / f"{n}.html").resolve().as_uri(), n,
                               expected_figures(n, build)) for n in names]
        browser.close()
    return reports


def screenshot(page_html: Path | str, png: Path | str, width: int = 1200, height: int = 1700) -> Path:
    """Save a built page as seen in headless Chromium (``width`` x ``height`` CSS pixels)."""
    from playwright.sync_api import sync_playwright

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(Path(page_html).resolve().as_uri(), wait_until="load")
        page.wait_for_timeout(500)
        page.screenshot(path=str(png))
        browser.close()
    return png
