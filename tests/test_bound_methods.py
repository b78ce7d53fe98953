"""Which bound method reproduces the paper's FAITHUB (fkd.book.bound_methods): runs built from the
paper's own Table 2 are counted as reproduced, shifted ones are not; and on the published method
sweep the methods nest, loosest to tightest, on every row."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from fkd.book.bound_methods import ORDER, method_runs, method_summary, method_table
from fkd.book.paper_numbers import paper_table
from fkd.paths import RESULTS, methods_base

STUDENTS = {"SD": "sd-a0.5", "ARD": "ard-a0.5", "RSLAD": "rslad-a0.5", "FD": "fd-a0.5"}


def _run(path, method, tightening, domain, shift=0.0, images=(0, 1, 2)):
    """A run directory whose mean paper-mode FAITHUB is the paper's MNIST Table 2 plus ``shift``."""
    ref = paper_table("table2_faithfulness")
    ref = ref[(ref.dataset == "MNIST") & (ref.bound == "FAITHUB")]
    rows = [{"student": STUDENTS[r.student], "eps": float(r.eps), "image": i, "domain": domain,
             "faithub_paper": float(r["mean"]) + shift} for _, r in ref.iterrows() for i in images]
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path / "verify.csv.gz", index=False)
    (path / "config.json").write_text(json.dumps({"config": {"method": method, "tightening": tightening}}))


def test_a_setting_equal_to_the_papers_reproduces_every_cell_and_a_shifted_one_none(tmp_path):
    _run(tmp_path / "certified" / "mnist", "lp", None, "clamped", shift=-0.2)        # published: LP, tightened by LP
    _run(tmp_path / "certified-plain" / "mnist", "lp", None, "plain", shift=0.04, images=(0, 1, 2, 3))
    _run(methods_base("mnist", tmp_path) / "crown-clamped", "crown", None, "clamped")
    runs = method_runs("mnist", tmp_path)
    assert {(s.label, d.value) for s, d in runs} == {("LP, layers tightened by LP", "clamped"),
                                                     ("LP, layers tightened by LP", "plain"), ("CROWN", "clamped")}
    t = method_table("mnist", tmp_path)
    assert t.attrs["n_images"] == 3 and len(t) == 20                          # the images every run covers
    assert [c[0] for c in t.columns] == ["CROWN", "LP, layers tightened by LP", "LP, layers tightened by LP", "paper"]
    s = method_summary("mnist", tmp_path)
    assert s.loc[("CROWN", "clamped"), "within"] == 20 and s.loc[("CROWN", "clamped"), "mean |diff|"] == 0
    assert s.loc[("LP, layers tightened by LP", "plain"), "within"] == 20       # 0.04 is within 0.05
    assert s.loc[("LP, layers tightened by LP", "clamped"), "within"] == 0
    assert s.loc[("LP, layers tightened by LP", "clamped"), "mean diff"] == pytest.approx(-0.2)
    with pytest.raises(FileNotFoundError, match="method sweep"):
        method_table("fashion-mnist", tmp_path)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_published_bound_methods_nest_loosest_to_tightest_on_every_row(dataset):
    runs = method_runs(dataset, RESULTS)
    if len(runs) < 2:
        pytest.skip(f"no method sweep of {dataset} published")
    keys = ["student", "eps", "image"]
    for domain in {d for _, d in runs}:
        chain = sorted((s for s, d in runs if d == domain), key=ORDER.index)
        rows = [pd.read_csv(runs[(s, domain)] / "verify.csv.gz", usecols=keys + ["faithub_paper", "emplb"]) for s in chain]
        for (looser, a), (tighter, b) in zip(zip(chain, rows), zip(chain[1:], rows[1:])):
            m = a.merge(b, on=keys, suffixes=("_loose", "_tight"))
            assert len(m), (looser, tighter)
            assert (m.faithub_paper_tight <= m.faithub_paper_loose + 1e-6).all(), (domain, looser.label, tighter.label)
            assert (m.emplb_tight <= m.faithub_paper_tight + 1e-7).all()         # every bound above its EMPLB
