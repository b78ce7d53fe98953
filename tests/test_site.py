"""The built book in headless Chromium: every chapter page renders its figures, shows no error
output, and the kernel-free explorer responds. Run by `make site-check` after the book is built."""
import pytest

from fkd.site import check_site, screenshot

pytestmark = pytest.mark.site


@pytest.fixture(scope="module")
def reports():
    return check_site()


def test_every_chapter_renders_its_figures_without_errors(reports):
    problems = {r.chapter: r.problems for r in reports if r.problems}
    assert not problems, problems
    figures = {r.chapter: r.figures for r in reports}
    # the chapters whose notebooks draw figures show every one of them
    for chapter in ("motivation", "distillation", "framework", "experiments-mnist", "experiments-fashion-mnist",
                    "experiments-cifar10", "attack-dependence"):
        assert figures[chapter] >= 1, (chapter, figures)


def test_a_page_can_be_photographed(tmp_path):
    png = screenshot(check_site.__globals__["ROOT"] / "_build" / "html" / "book" / "motivation.html",
                     tmp_path / "m.png", height=600)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_a_broken_page_is_reported(tmp_path):
    from playwright.sync_api import sync_playwright

    from fkd.site import CHROMIUM_ARGS, check_page, chromium

    page_html = tmp_path / "broken.html"
    page_html.write_text("<html><body><main><h1>A chapter</h1><p>the gap \\(\\delta^*\\)</p>"
                         "<div class='cell_output'><img src='missing.png'></div>"
                         "<pre>Traceback (most recent call last):\n  ValueError</pre>"
                         "<div class='fkd-explorer'><input class='eps' type='range'><img class='frame'></div>"
                         "</main></body></html>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        report = check_page(browser.new_page(), page_html.as_uri(), "broken", expected=3)
        browser.close()
    text = " | ".join(report.problems)
    assert "figure does not load: missing.png" in text
    assert "1 figures shown, the executed notebook made 3" in text
    assert "error output: Traceback" in text and "explorer: no frame shown" in text
    assert "equations not typeset" in text
