"""The verification driver: shards, merge, resume, and the soundness guard (shipped MNIST zoo, CROWN)."""
import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from fkd.cli import main
from fkd.metrics import Attack
from fkd.experiments.verify import merge, verify
from fkd.experiments.verify_config import VerifyConfig, parse_shard

BASE = dict(dataset="mnist", students=("sd", "fd"), eps=(0.025, 0.1), n_images=5, attack=Attack(5, 1))


def cfg(**kw):
    return VerifyConfig(**{**BASE, **kw})


def test_config_and_shards_validate():
    assert parse_shard("2/8") == (2, 8)
    with pytest.raises(ValueError, match="write k/n"):
        parse_shard("two")
    with pytest.raises(ValueError, match="1 <= k <= n"):
        cfg(shard=(3, 2))
    with pytest.raises(ValueError, match=r"eps must lie in \(0, 1\]"):
        cfg(eps=(0.0,))
    with pytest.raises(ValueError, match="choose one of: interval, crown, lp, milp"):
        cfg(method="exact")
    shards = [cfg(shard=(k, 3)).images() for k in (1, 2, 3)]
    assert sorted(sum(shards, [])) == list(range(5)) and not set(shards[0]) & set(shards[1])


def test_shards_merge_to_the_unsharded_run_and_resume(tmp_path):
    whole = verify(cfg(), tmp_path / "whole", progress=False)
    parts = [verify(cfg(shard=(k, 2)), tmp_path / f"s{k}", progress=False) for k in (1, 2)]
    assert sum(len(p) for p in parts) == len(whole) == 2 * 2 * 5
    merged = merge(tmp_path / "merged", [tmp_path / "s1", tmp_path / "s2"])
    cols = ["student", "eps", "image", "emplb", "faithub_paper", "faithub_tight"]
    pd.testing.assert_frame_equal(merged[cols], whole[cols])
    meta = json.loads((tmp_path / "merged" / "config.json").read_text())  # the merged run keeps its records
    assert meta["config"]["shard"] == [1, 1] and meta["merged_from"] == [[1, 2], [2, 2]]
    assert meta["fingerprint"] == json.loads((tmp_path / "whole" / "config.json").read_text())["fingerprint"]
    assert len((tmp_path / "merged" / "runs.jsonl").read_text().splitlines()) == 2
    run = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert [r["shard"] for r in run["merged_from"]] == [[1, 2], [2, 2]] and run["seed"] == 0
    assert (whole.emplb <= whole.faithub_tight + 1e-6).all()
    assert (whole.faithub_tight <= whole.faithub_paper + 1e-9).all()  # tight mode is never looser
    next((tmp_path / "whole" / "parts").glob("eps0.100000/*.csv")).unlink()
    verify(cfg(), tmp_path / "whole", progress=False)
    assert json.loads((tmp_path / "whole" / "run.json").read_text())["computed_now"] == 1
    with pytest.raises(ValueError, match="different run"):
        verify(cfg(method="interval"), tmp_path / "whole", progress=False)
    verify(cfg(method="interval"), tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="different configs"):
        merge(tmp_path / "bad", [tmp_path / "whole", tmp_path / "other"])


def test_a_run_grows_in_students_computing_only_the_new_ones(tmp_path):
    first = verify(cfg(students=("sd",), eps=(0.1,), n_images=2), tmp_path, progress=False)
    assert set(first.student) == {"sd-a0.5"}
    grown = verify(cfg(students=("sd", "fd"), eps=(0.1,), n_images=2), tmp_path, progress=False)
    assert len(grown) == 4 and set(grown.student) == {"sd-a0.5", "fd-a0.5"}
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["computed_now"] == 2 and all(k.endswith(":fd-a0.5") for k in record["task_seconds"])
    cols = ["emplb", "faithub_paper", "faithub_tight"]
    pd.testing.assert_frame_equal(grown[grown.student == "sd-a0.5"][cols].reset_index(drop=True),
                                  first[cols].reset_index(drop=True))


def test_joint_mode_adds_a_column_never_looser_than_tight(tmp_path):
    rows = verify(cfg(students=("fd",), eps=(0.05,), n_images=2, modes=("paper", "tight", "joint")), tmp_path,
                  progress=False)
    assert (rows.emplb <= rows.faithub_joint + 1e-6).all()
    assert (rows.faithub_joint <= rows.faithub_tight + 1e-12).all() and (rows.seconds_joint > 0).all()
    with pytest.raises(ValueError, match="unknown DiffMode 'both'|unknown diffmode 'both'"):
        cfg(modes=("both",))


def test_an_upper_bound_below_the_attack_is_reported_as_a_bug(tmp_path, monkeypatch):
    import fkd.experiments.verify as v

    real = v.ImageBounds.tight
    monkeypatch.setattr(v.ImageBounds, "tight", lambda *a, **k: dataclasses.replace(real(*a, **k), value=0.0))
    with pytest.raises(AssertionError, match="soundness violated"):
        verify(cfg(students=("sd",), eps=(0.1,), n_images=1), tmp_path, progress=False)


def test_cli_verify_and_merge(tmp_path, capsys):
    args = ["verify", "--dataset", "mnist", "--students", "fd", "--eps", "0.05", "--n-images", "2", "--quiet"]
    assert main(args + ["--shard", "1/2", "--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--shard", "2/2", "--out", str(tmp_path / "b")]) == 0
    assert main(["verify", "--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 0
    assert "2 rows" in capsys.readouterr().out.splitlines()[-1]
    assert main(args + ["--shard", "1-2", "--out", str(tmp_path / "c")]) == 2
    assert "write k/n" in capsys.readouterr().err


def _rows(gen):
    import torch
    n = 7
    frames = []
    for eps in (0.05, 0.1):
        for student in ("sd-a0.5", "fd-a0.5"):
            e = torch.rand(n, generator=gen).double() * 0.5
            frames.append(pd.DataFrame({"dataset": "mnist", "teacher": "rt", "student": student, "eps": eps,
                                        "image": range(n), "emplb": e.numpy(), "faithub_tight": (e + 0.3).numpy(),
                                        "faithub_paper": (e + 0.4).clamp(max=1).numpy()}))
    return pd.concat(frames, ignore_index=True)


def test_table2_is_the_mean_and_std_of_the_rows_beside_the_paper(pinned):
    from fkd.book.paper_numbers import paper_table
    from fkd.book.tables import table2
    rows = _rows(pinned)
    t = table2(rows, "mnist", "paper")
    assert len(t) == 2 * 2 * 2 and set(t.bound) == {"EMPLB", "FAITHUB"} and (t.n == 7).all()
    cell = t[(t.eps_label == "0.1") & (t.bound == "FAITHUB") & (t.student == "FD")].iloc[0]
    mine = rows[(rows.eps == 0.1) & (rows.student == "fd-a0.5")].faithub_paper
    assert abs(cell["mean"] - mine.mean()) < 1e-4 and abs(cell["std"] - mine.std(ddof=0)) < 1e-4
    ref = paper_table("table2_faithfulness")
    paper = ref[(ref.dataset == "MNIST") & (ref.eps_label == "0.1") & (ref.bound == "FAITHUB") & (ref.student == "FD")]
    assert cell["paper_mean"] == float(paper["mean"].iloc[0])
    assert abs(cell["diff_mean"] - (cell["mean"] - cell["paper_mean"])) < 1e-3
    with pytest.raises(ValueError, match="they hold: tight, paper"):
        table2(rows, "mnist", "joint")


def test_histograms_have_a_panel_per_eps_and_student_holding_every_image(pinned):
    from fkd.book.plots import plot_bound_histograms
    fig = plot_bound_histograms(_rows(pinned), "tight", bins=10)
    axes = fig.axes
    assert len(axes) == 2 * 2
    for ax in axes:
        bars = [sum(p.get_height() for p in c) for c in ax.containers]
        assert bars == [7, 7]  # EMPLB and FAITHUB of every image
    assert [ax.get_title() for ax in axes[:2]] == ["SD", "FD"]


def test_export_publishes_rows_tables_and_figures(tmp_path):
    verify(cfg(students=("fd",), eps=(0.05,), n_images=2), tmp_path / "run", progress=False)
    from fkd.book.publish import export_certified as export
    dest = export(tmp_path / "run", tmp_path / "pub")
    names = {p.name for p in dest.iterdir()}
    assert {"verify.csv.gz", "config.json", "run.json", "table2_paper.csv", "table2_tight.csv",
            "histograms_tight.png"} <= names
    assert len(pd.read_csv(dest / "verify.csv.gz")) == 2


def test_a_published_run_is_restored_and_grows_without_recomputing_its_rows(tmp_path):
    from fkd.book.publish import export_certified as export
    from fkd.experiments.verify import restore
    small = cfg(students=("fd",), eps=(0.05,), n_images=2)
    first = verify(small, tmp_path / "run", progress=False)
    export(tmp_path / "run", tmp_path / "pub")
    assert restore(tmp_path / "pub", tmp_path / "grown") == 2  # one part file per (image, eps)
    assert restore(tmp_path / "pub", tmp_path / "grown") == 0  # nothing twice
    grown = verify(dataclasses.replace(small, n_images=3), tmp_path / "grown", progress=False)
    record = json.loads((tmp_path / "grown" / "run.json").read_text())
    assert record["computed_now"] == 1 and len(grown) == 3
    runs = (tmp_path / "grown" / "runs.jsonl").read_text().splitlines()
    assert len(runs) == 2  # the published invocation, then the growth
    cols = ["student", "eps", "image", "emplb", "faithub_paper", "faithub_tight", "seconds_tight"]
    pd.testing.assert_frame_equal(grown[cols].iloc[:2], first[cols])  # restored rows verbatim
    with pytest.raises(ValueError, match="different run"):
        verify(dataclasses.replace(small, method="interval"), tmp_path / "grown", progress=False)
    verify(dataclasses.replace(small, method="interval"), tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="different run"):  # never mixes rows of two configs
        restore(tmp_path / "pub", tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="--export"):
        restore(tmp_path / "nothing", tmp_path / "x")


def test_rows_name_their_units_and_domain(tmp_path):
    """Every row says how its eps is read and which set it bounds; on the plain ball EMPLB and
    FAITHUB still sandwich delta* (CROWN, same images)."""
    small = dict(eps=(0.1,), n_images=3, students=("fd",))
    clamped = verify(cfg(**small, units="normalised"), tmp_path / "c", progress=False)
    plain = verify(cfg(**small, units="normalised", domain="plain"), tmp_path / "p", progress=False)
    assert set(clamped.units) == {"normalised"} and set(clamped.domain) == {"clamped"} and set(plain.domain) == {"plain"}
    assert clamped.eps_pixel.astype(float).round(5).tolist() == [round(0.1 * 0.3081, 5)] * 3
    assert (plain.emplb <= plain.faithub_tight + 1e-6).all()
    with pytest.raises(ValueError, match="choose another --out"):
        verify(cfg(**small, units="pixel"), tmp_path / "c", progress=False)  # a run keeps its reading


def test_a_run_with_the_constant_float_margin_is_restored_but_never_grown(tmp_path):
    """Published rows computed with the constant 1e-5 margin keep their fingerprint when restored; a
    run of today's bounds (the derived margin) refuses to mix its rows into them, naming fp_margin."""
    from fkd.experiments.verify import restore, verify

    published = Path(__file__).resolve().parent.parent / "results" / "pixel" / "certified" / "mnist"
    meta = json.loads((published / "config.json").read_text())
    assert "fp_margin" not in meta["config"]
    old = VerifyConfig(**{"units": "pixel", "fp_margin": "constant", **meta["config"]})
    assert old.fingerprint() == meta["fingerprint"]
    out = tmp_path / "run"
    restore(published, out)
    cfg = VerifyConfig(**{**meta["config"], "units": "pixel", "n_images": 1})
    with pytest.raises(ValueError, match="fp_margin"):
        verify(cfg, out, progress=False)
    with pytest.raises(ValueError, match="never computed"):
        verify(old, tmp_path / "other", progress=False)
