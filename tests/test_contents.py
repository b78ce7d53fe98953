"""The preface's list of chapters: every chapter of the table of contents, with its part and the
first sentence of its opening paragraph."""
import json

from fkd.book.contents import contents, opening, toc_entries
from fkd.book.reproduce import ROOT


def test_every_chapter_of_the_toc_is_listed_with_what_it_shows():
    entries = toc_entries()
    frame = contents()
    assert len(frame) == len(entries) - 1              # all but the root (the preface itself)
    assert frame["what it shows"].str.len().min() > 20
    assert "The model zoo" in set(frame.chapter)       # a Markdown page counts too


def test_a_new_chapter_appears_with_its_opening_sentence(tmp_path):
    (tmp_path / "book").mkdir()
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": [
        "# Audit your own student\n", "\n", "This chapter checks `a student` of yours. It then says more.\n"]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "book" / "audit.ipynb").write_text(json.dumps(nb))
    (tmp_path / "book" / "preface.md").write_text("# Preface\n\nHello.\n")
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/preface\nparts:\n  - caption: Use it\n    chapters:\n"
                   "      - file: book/audit\n      - file: book/missing\n")
    frame = contents(toc)
    assert frame.to_dict("records") == [{"part": "Use it", "chapter": "Audit your own student",
                                         "what it shows": "This chapter checks <code>a student</code> of yours."}]
    assert opening(ROOT / "book" / "model-zoo.md")[0] == "The model zoo"


def test_every_chapter_opens_with_what_it_shows_and_closes_with_what_to_take_away():
    for _, path in toc_entries()[1:]:
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        else:
            text = path.read_text()
        headings = [ln for ln in text.splitlines() if ln.startswith("## ")]
        assert opening(path)[1], path.name
        assert headings and headings[-1].startswith("## What to take away"), (path.name, headings[-1:])
