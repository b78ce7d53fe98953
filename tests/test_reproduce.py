"""Batch reproduction with papermill: parameters reach the chapter, up-to-date chapters are skipped,
a change reruns, a failing chapter is named, unknown chapters are refused."""
import json

import nbformat
import pytest

from fkd.book.reproduce import ChapterFailed, chapters, reproduce


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "full"\nout = "."\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


WRITE = ("import json, pathlib\n"
         "p = pathlib.Path(out) / 'ran.jsonl'\n"
         "p.open('a').write(json.dumps({'profile': profile, 'seed': seed}) + '\\n')")


def test_chapters_run_with_parameters_skip_when_up_to_date_and_rerun_on_change(tmp_path):
    import os
    before = os.environ.get("PYTHONPATH")
    a = _notebook(tmp_path / "a.ipynb", WRITE + "\nimport fkd")  # the checkout's fkd is importable
    b = _notebook(tmp_path / "b.ipynb", "x = 1")
    out = tmp_path / "out"
    lines = []
    first = reproduce("quick", out, notebooks=[a, b], seed=3, report=lines.append)
    assert [o.status for o in first] == ["ran", "ran"]
    assert json.loads((out / "ran.jsonl").read_text()) == {"profile": "quick", "seed": 3}
    assert lines[0] == "[1/2] a: running ..." and lines[-1].startswith("[2/2] b: done in")
    again = reproduce("quick", out, notebooks=[a, b], seed=3, report=lambda s: None)
    assert [o.status for o in again] == ["up to date", "up to date"]
    assert len((out / "ran.jsonl").read_text().splitlines()) == 1
    _notebook(b, "x = 2")  # an edited chapter reruns, the other stays up to date
    assert [o.status for o in reproduce("quick", out, notebooks=[a, b], seed=3, report=lambda s: None)] == \
        ["up to date", "ran"]
    assert [o.status for o in reproduce("full", out, notebooks=[a], seed=3, report=lambda s: None)] == ["ran"]
    assert os.environ.get("PYTHONPATH") == before  # the environment is restored


def test_a_failing_chapter_is_named_and_not_stamped(tmp_path):
    bad = _notebook(tmp_path / "bad.ipynb", "raise ValueError('no data here')")
    with pytest.raises(ChapterFailed, match="chapter bad failed in cell .*ValueError: no data here"):
        reproduce("quick", tmp_path / "out", notebooks=[bad], report=lambda s: None)
    assert not (tmp_path / "out" / "bad.stamp.json").exists()
    assert (tmp_path / "out" / "bad.ipynb").exists()  # kept, with the traceback


def test_unknown_chapters_are_refused_and_the_toc_is_read(tmp_path):
    a = _notebook(tmp_path / "a.ipynb", "x = 1")
    with pytest.raises(ValueError, match="unknown chapters nope; choose from: a"):
        reproduce("quick", tmp_path / "out", notebooks=[a], only=["nope"])
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: a\n  - file: missing\n")
    (tmp_path / "intro.md").write_text("# intro\n")
    assert chapters(tmp_path / "_toc.yml") == [a]
