"""The built book in headless Chromium: every chapter page loads nothing from the network, renders
its figures with numbered captions, and shows no error output, NaN, truncated or overflowing
table or raw repr; the kernel-free explorer responds. Run by `make site-check` after the book is
built; each rule is tested on a synthetic page in test_site_rules.py."""
import pytest

from fkd.book.site import check_site, screenshot
from fkd.paths import SITE

pytestmark = pytest.mark.site


@pytest.fixture(scope="module")
def reports():
    return check_site()


def test_every_chapter_renders_its_figures_without_errors(reports):
    problems = {r.chapter: r.problems for r in reports if r.problems}
    assert not problems, problems
    assert all(not r.requests for r in reports)
    figures = {r.chapter: r.figures for r in reports}
    # the chapters whose notebooks draw figures show every one of them
    for chapter in ("motivation", "distillation", "framework", "experiments-mnist", "experiments-fashion-mnist",
                    "experiments-cifar10", "attack-dependence"):
        assert figures[chapter] >= 1, (chapter, figures)


def test_a_page_can_be_photographed(tmp_path):
    png = screenshot(SITE / "book" / "motivation.html", tmp_path / "m.png", height=600)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
