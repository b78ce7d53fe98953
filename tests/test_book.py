"""The book's glue (fkd.book.chapters), the report's claims (fkd.book.report), Table 5 and the live demos."""
import pandas as pd
import pytest
import torch

import fkd.book.chapters as book
from fkd.book import report
from fkd.book import tables
from fkd.book.demos import gap_at_training_points, inner_point, loss_table
from fkd.experiments.runner import torch_threads


def test_experiment_takes_the_profile_defaults_and_validates():
    q = book.experiment("quick", "cifar10")
    assert (q.n_images, q.n_verify, q.bound_method) == (5, 5, "crown") and len(q.eps) == 5
    f = book.experiment("full", "mnist")
    assert (f.n_images, f.n_verify, f.bound_method) == (1000, 1000, "lp") and 0.0 not in f.eps
    assert f.eval_config().eps[0] == 0.0  # Table 1 adds the clean row
    assert q.out == book.ROOT / "_build" / "reproduce"  # relative to the project, not the notebook
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; choose one of: mnist"):
        book.experiment("quick", "svhn")
    with pytest.raises(ValueError, match="set device = 'cpu'"):
        book.experiment("quick", "mnist", device="cuda")
    with pytest.raises(ValueError, match=r"eps must lie in \(0, 1\]"):
        book.experiment("quick", "mnist", eps=[2.0])


def test_an_experiment_runs_resumes_and_records(tmp_path):
    exp = book.experiment("quick", "mnist", n_images=2, eps=[0.05], out=tmp_path, students=("fd",))
    rows = exp.verify()
    assert len(rows) == 2 and (rows.emplb <= rows.faithub_tight + 1e-6).all()
    results = exp.evaluate()
    assert set(results.eps) == {0.0, 0.05} and set(results.student) == {"rt", "fd-a0.5"}
    rec = exp.record("certified")
    assert rec["seed"] == 0 and rec["images"] == 2 and "torch 2.14.1" in rec["packages"]
    first = book.provenance(tmp_path / "mnist" / "certified")["wall_time_s"]
    again = exp.verify()  # resumed: nothing recomputed
    rec = book.provenance(tmp_path / "mnist" / "certified")
    assert rec["invocations"] == 2 and first <= rec["wall_time_s"] < first + 1.0
    pd.testing.assert_frame_equal(again, rows)
    with pytest.raises(FileNotFoundError, match="no run record"):
        book.provenance(tmp_path / "nowhere")


def test_published_runs_carry_rows_and_records():
    pub = book.published("mnist")
    assert len(pub.certified) > 0 and len(pub.empirical) > 0 and len(pub.records) == 2
    assert book.records_table(pub.records).index.tolist() == ["results/empirical/mnist", "results/certified/mnist"]
    runs = book.report_runs("quick")
    assert runs.datasets == ["mnist", "fashion-mnist", "cifar10"] and set(runs.certified) == set(runs.datasets)


def _verify_rows(faithub: dict, dataset="mnist", eps=(0.1, 0.2)):
    """Synthetic verify rows: student -> FAITHUB per eps (two images each, same value)."""
    return pd.DataFrame([{"dataset": dataset, "teacher": "rt", "student": s, "eps": e, "image": i, "emplb": 0.0,
                          "faithub_tight": v[k]} for s, v in faithub.items() for k, e in enumerate(eps) for i in (1, 2)])


def test_claims_are_decided_cell_by_cell():
    fd_best = _verify_rows({"sd-a0.5": [0.9, 1.0], "ard-a0.5": [0.5, 0.8], "rslad-a0.5": [0.4, 0.7], "fd-a0.5": [0.3, 0.6]})
    mixed = _verify_rows({"sd-a0.5": [0.9, 1.0], "ard-a0.5": [0.5, 0.4], "rslad-a0.5": [0.4, 0.7], "fd-a0.5": [0.3, 0.6]})
    ii = report.claim_ii({"mnist": fd_best, "fashion-mnist": mixed.assign(dataset="fashion-mnist")})
    assert [r["verdict"] for r in ii] == ["holds", "partly"] and "ARD 0.400 < FD 0.600" in ii[1]["detail"]
    iv = report.claim_iv({"mnist": fd_best, "x": mixed})
    assert [r["verdict"] for r in iv] == ["holds", "partly"] and "ARD 0.1->0.2" in iv[1]["detail"]
    cifar = _verify_rows({"fd-a0.5": [0.5, 0.9], "fd-a0.75": [0.4, 0.5], "fd-a1": [0.45, 0.4]}, "cifar10")
    v = report.claim_v(cifar)[0]
    assert v["verdict"] == "partly" and v["cells"] == "3/4"
    assert report.claim_v(cifar[cifar.student != "fd-a0.75"])[0]["verdict"] == "no data"


def test_table5_means_are_the_rows_means():
    rows = _verify_rows({"fd-a0.5": [0.5, 0.9], "fd-a0.75": [0.4, 0.5], "fd-a1": [0.45, 0.4]}, "cifar10",
                        eps=(4 / 255, 8 / 255))
    rows.loc[rows.image == 2, "faithub_tight"] += 0.1
    t = tables.table5(rows)
    cell = t[(t.bound == "FAITHUB") & (t.alpha == 1.0) & (t.eps_label == "4/255")].iloc[0]
    assert cell["mean"] == pytest.approx(0.5) and cell["std"] == pytest.approx(0.05)
    assert cell["paper_mean"] == 0.474 and cell["diff_mean"] == pytest.approx(0.026)
    with pytest.raises(ValueError, match="no FD students"):
        tables.table5(rows[rows.student == "none"])
    g = tables.grid(t, "alpha")                 # the same cell, in the grid readers see
    assert g.loc[("4/255", "FAITHUB"), ("FD α 1", "ours")] == pytest.approx(0.5)
    assert g.loc[("4/255", "FAITHUB"), ("FD α 1", "paper")] == 0.474
    assert list(g.index.get_level_values(0)) == ["4/255", "4/255", "8/255", "8/255"]  # eps in order, not sorted as text
    assert g[("images", "")].tolist() == [2, 2, 2, 2]


def test_each_loss_vanishes_where_it_must():
    t = loss_table("mnist", n_images=16)
    # the teacher distilled into itself: SD and FD compare one network at one point
    assert t.loc["SD", ("teacher itself", "KL term")] == 0.0 and t.loc["FD", ("teacher itself", "KL term")] == 0.0
    assert t.loc["ARD", ("teacher itself", "KL term")] > 0 and t.loc["RSLAD", ("teacher itself", "KL term")] > 0
    g = gap_at_training_points("mnist", n_images=16)
    assert (g[g["training point"] == "SD"]["teacher moves"] == 0).all()  # SD trains on x itself


def test_inner_points_stay_in_the_ball_and_the_box(pinned):
    from fkd import load_model
    from fkd.data import eval_subset

    x, y, _ = eval_subset("mnist", 8)
    t, s = load_model("mnist", "rt"), load_model("mnist", "fd")
    for m in ("ard", "rslad", "fd"):
        xp = inner_point("mnist", m, s, t, x, y, pinned)
        assert (xp - x).abs().max() <= 0.2 + 1e-6 and xp.min() >= 0 and xp.max() <= 1
    assert inner_point("mnist", "sd", s, t, x, y, pinned) is x


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_the_two_readings_never_share_a_run_directory(tmp_path):
    from fkd.book import chapters as book

    for d, other_units in (("mnist", "pixel"), ("fashion-mnist", "pixel"), ("cifar10", "pixel")):  # the other reading
        default = book.experiment("quick", d, out=tmp_path)
        other = book.experiment("quick", d, out=tmp_path, units=other_units)
        assert default.run_dir("empirical") == tmp_path / d / "empirical"
        assert other.run_dir("empirical") == tmp_path / d / f"empirical-{other_units}"


def test_a_figure_shown_in_its_cell_is_removed_from_the_page():
    """``present.figure(..., show=True)`` shows the figure in Jupyter too: its cell must carry the
    ``remove-output`` tag, or the page shows it twice, once without its numbered caption."""
    import json
    import re
    from pathlib import Path

    cells = [(p.name, c) for p in sorted(Path("book").glob("*.ipynb")) for c in json.loads(p.read_text())["cells"]
             if c["cell_type"] == "code"]
    shown = [(name, c) for name, c in cells if re.search(r"\bfigure\(.*show=True", "".join(c["source"]), re.S)]
    assert len(shown) >= 20, len(shown)
    untagged = [(name, "".join(c["source"])[:60]) for name, c in shown
                if "remove-output" not in c["metadata"].get("tags", [])]
    assert not untagged, untagged
