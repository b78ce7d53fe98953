"""Each rule of the browser check on a small synthetic page: a page that breaks the rule is
reported, and a page for readers passes. Needs Chromium (`make chromium`); no book build."""
import shutil

import pytest

from fkd.book import site

pytestmark = pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                                reason="no Chromium (`make chromium`)")

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
       "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
GOOD_FIGURE = f"<figure><img src='{PNG}'><figcaption><span class='caption-number'>Fig. 1 </span>What it shows.</figcaption></figure>"


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, pg = site.open_browser(p)
        yield pg
        browser.close()


def check(page, tmp_path, body: str, expected: int = 0) -> list[str]:
    html = tmp_path / "page.html"
    html.write_text(f"<html><body><main><article style='width: 700px'><h1>A chapter</h1>{body}</article></main></body></html>")
    return site.check_page(page, html.as_uri(), "page", expected).problems


def only(problems: list[str], rule: str) -> None:
    assert problems and all(p.startswith(rule) for p in problems), problems


def test_a_page_for_readers_passes(page, tmp_path):
    table = "<table><caption>Table</caption><tr><th>eps</th><th>ours</th></tr><tr><td>0.1</td><td>\u2013</td></tr></table>"
    assert check(page, tmp_path, f"<p>text</p>{GOOD_FIGURE}{table}", expected=1) == []


def test_every_request_off_the_machine_is_blocked_and_counted(page, tmp_path):
    problems = check(page, tmp_path, "<script src='https://cdn.example.org/require.min.js'></script>"
                                     "<link rel='stylesheet' href='http://example.org/a.css'>")
    only(problems, "network request")
    assert len(problems) == 2


def test_a_figure_without_a_numbered_caption(page, tmp_path):
    only(check(page, tmp_path, f"<div class='cell_output'><img src='{PNG}'></div>", expected=1),
         "figure without a numbered caption")
    only(check(page, tmp_path, f"<figure><img src='{PNG}'><figcaption>no number</figcaption></figure>", expected=1),
         "figure without a numbered caption")


def test_a_figure_that_does_not_load_and_missing_figures(page, tmp_path):
    problems = check(page, tmp_path, "<figure><img src='missing.png'><figcaption>Fig. 1 x</figcaption></figure>",
                     expected=2)
    assert any(p.startswith("figure does not load: missing.png") for p in problems)
    assert any(p.startswith("figures shown: 1, the executed notebook made 2") for p in problems)


def test_nan_in_a_table(page, tmp_path):
    only(check(page, tmp_path, "<table><tr><th>x</th></tr><tr><td>NaN</td></tr></table>"), "NaN")


def test_pandas_truncation(page, tmp_path):
    only(check(page, tmp_path, "<table><tr><th>a</th><th>...</th></tr></table><p>6 rows \u00d7 28 columns</p>"),
         "pandas truncation")


def test_a_table_wider_than_the_text_column(page, tmp_path):
    cells = "".join(f"<td>column {i}</td>" for i in range(40))
    only(check(page, tmp_path, f"<div style='overflow:auto'><table><tr>{cells}</tr></table></div>"),
         "table wider than the text column")


@pytest.mark.parametrize("text", ["Experiment(dataset=&lt;Dataset.CIFAR10: 'cifar10'&gt;, n=5)",
                                  "&lt;fkd.book.widgets.Explorer object at 0x7f3a2c&gt;", "'20 rows: all sound'",
                                  "&lt;Figure size 640x480 with 1 Axes&gt;"])
def test_a_raw_repr_in_an_output(page, tmp_path, text):
    only(check(page, tmp_path, f"<div class='cell_output'><div class='output text_plain'><pre>{text}</pre></div></div>"),
         "raw repr")


def test_a_traceback(page, tmp_path):
    problems = check(page, tmp_path, "<div class='cell_output'><pre>Traceback (most recent call last):\n  "
                                     "ValueError</pre></div>")
    assert any(p.startswith("error output: Traceback") for p in problems)


def test_tex_left_as_text_and_no_title(page, tmp_path):
    html = tmp_path / "page.html"
    html.write_text("<html><body><main><p>the gap \\(\\delta^*\\)</p></main></body></html>")
    problems = site.check_page(page, html.as_uri(), "page", 0).problems
    assert any(p.startswith("equations not typeset") for p in problems)
    assert any(p.startswith("no title") for p in problems)


def test_a_dead_explorer(page, tmp_path):
    only(check(page, tmp_path, "<div class='fkd-explorer'><input class='eps' type='range'><img class='frame'></div>"),
         "kernel-free explorer")


def test_every_rule_has_a_test():
    tested = {"network request", "figure does not load", "figures shown", "figure without a numbered caption", "NaN",
              "pandas truncation", "table wider than the text column", "raw repr", "error output",
              "equations not typeset", "no title", "kernel-free explorer"}
    assert tested == set(site.RULES)
