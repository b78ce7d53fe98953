"""The evaluation driver (resume, determinism, Dask), the tables and the attack study on the shipped MNIST zoo."""
import json

import pandas as pd
import pytest

from fkd.cli import main
from fkd.experiments.attack_study import AttackStudyConfig, attack_strength, plateau_summary, table3_study
from fkd.experiments.evaluate import COLUMNS, EvalConfig, eval_config, evaluate, load_results, plan
from fkd.metrics import Attack
from fkd.book.paper_numbers import paper_table
from fkd.book.tables import emplb_table, table1, table3

SMALL = dict(students=("sd", "fd"), eps=(0.0, 0.1), n_images=8, attack=Attack(3, 1), chunk_size=4)


def small(**kw):
    return eval_config("mnist", **{**SMALL, **kw})


def test_config_validates_names_and_ranges():
    with pytest.raises(ValueError, match="choose one of: rt, sd, ard, rslad, fd"):
        small(students=("kd",))
    with pytest.raises(ValueError, match=r"eps must lie in \[0, 1\]"):
        small(eps=(0.1, 2.0))
    with pytest.raises(ValueError, match="strategy"):
        small(strategy="min")
    cfg = small(students=("fd", "fd-a0.75"))
    assert cfg.students == ("fd-a0.5", "fd-a0.75")
    assert eval_config("cifar10", ["fd"], profile="quick").students == ("fd-a1",)
    assert eval_config("cifar10", ["fd"], profile="quick").n_images == 20
    assert len(plan(cfg)) == 2 * 3 * 2  # eps x (teacher + 2 students) x chunks


def test_rows_are_tidy_complete_and_deterministic(tmp_path):
    cfg = small()
    a = evaluate(cfg, tmp_path / "a", progress=False)
    b = evaluate(cfg, tmp_path / "b", progress=False)
    assert tuple(a.columns) == COLUMNS
    pd.testing.assert_frame_equal(a, b)
    key = ["student", "eps", "image", "metric"]
    assert not a.duplicated(key).any()
    students = a[a.student != "rt"]
    assert set(students.metric) == {"correct", "agree", "emplb", "emplb_max", "emplb_classes", "top1_agree", "kl"}
    assert set(a[a.student == "rt"].metric) == {"correct"}
    assert students.groupby(["student", "eps", "metric"]).size().eq(8).all()
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["seed"] == 0 and run["packages"]["torch"] and run["config"]["n_images"] == 8
    # EMPLB never below the clean gap of the same image; agreement at eps implies agreement at 0
    wide = students.pivot_table(index=["student", "image"], columns=["metric", "eps"], values="value")
    assert (wide[("emplb", 0.1)] >= wide[("emplb", 0.0)] - 1e-6).all()
    assert (wide[("agree", 0.1)] <= wide[("agree", 0.0)]).all()
    assert (wide[("correct", 0.1)] <= wide[("correct", 0.0)]).all()


def test_resume_recomputes_only_missing_tasks_and_refuses_other_configs(tmp_path):
    cfg = small()
    first = evaluate(cfg, tmp_path, progress=False)
    victim = next((tmp_path / "parts").glob("fd-a0.5/eps0.100000/*.csv"))
    victim.unlink()
    again = evaluate(cfg, tmp_path, progress=False)
    assert json.loads((tmp_path / "run.json").read_text())["computed_now"] == 1
    history = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [r["computed_now"] for r in history] == [12, 1]
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(ValueError, match="different run"):
        evaluate(small(seed=1), tmp_path, progress=False)
    grown = evaluate(small(students=("sd", "fd", "ard")), tmp_path, progress=False)  # students may grow
    assert set(grown.student) == {"rt", "sd-a0.5", "fd-a0.5", "ard-a0.5"}


def test_the_papers_agreement_is_an_added_task_set_of_a_finished_run(tmp_path):
    cfg = small()
    before = evaluate(cfg, tmp_path, progress=False)
    both = small(agreement_attacks=("flip", "paper"))
    assert both.fingerprint() == cfg.fingerprint()  # published runs keep their fingerprints and rows
    assert len(plan(both)) == len(plan(cfg)) + 2 * 2 * 2  # eps x students x chunks, students only
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "parts").glob("*/*/*.csv")}
    after = evaluate(both, tmp_path, progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # only the new parts were computed
    assert json.loads((tmp_path / "run.json").read_text())["computed_now"] == 8
    pd.testing.assert_frame_equal(after[after.metric != "agree_paper"].reset_index(drop=True), before)
    wide = after[after.student != "rt"].pivot_table(index=["student", "eps", "image"], columns="metric", values="value")
    assert wide.agree_paper.notna().all() and (wide.agree <= wide.agree_paper).all()
    clean = wide.xs(0.0, level="eps")
    assert (clean.agree == clean.agree_paper).all()
    with pytest.raises(ValueError, match="must hold flip"):
        small(agreement_attacks=("paper",))


def test_dask_local_cluster_gives_the_same_rows_and_leaves_the_environment_alone(tmp_path):
    import os

    cfg = small(eps=(0.1,))
    local = evaluate(cfg, tmp_path / "local", progress=False)
    before = dict(os.environ)
    dask = evaluate(cfg, tmp_path / "dask", workers=2, progress=False)
    pd.testing.assert_frame_equal(local, dask)
    assert dict(os.environ) == before  # Dask's OMP_NUM_THREADS=1 must not leak into later subprocesses


def test_table1_puts_ours_beside_the_paper(tmp_path):
    df = evaluate(small(), tmp_path, progress=False)
    t = table1(df, "mnist")
    assert list(t.index) == ["0", "0.1"]
    assert t.loc["0.1", ("robust RT", "paper")] == 94.9 and t.loc["0", ("agree FD", "paper")] == 98.3
    ours = df[(df.student == "sd-a0.5") & (df.metric == "agree") & (df.eps == 0.1)].value.mean() * 100
    assert t.loc["0.1", ("agree SD", "ours")] == pytest.approx(round(ours, 1))
    assert t.loc["0.1", ("agree SD", "diff")] == pytest.approx(round(ours - 90.2, 1), abs=0.11)
    e = emplb_table(df, "mnist")
    assert list(e.student) == ["SD", "FD"] and list(e.paper_mean) == [0.106, 0.061]
    with pytest.raises(ValueError, match="no Table 1 rows"):
        table1(df, "cifar10")


def test_table1_shows_the_papers_attack_first_and_counts_cells_per_method(tmp_path):
    from fkd.book.units_report import _table1_cells

    df = evaluate(small(agreement_attacks=("flip", "paper")), tmp_path, progress=False)
    t = table1(df, "mnist")
    qs = list(dict.fromkeys(c[0] for c in t.columns))
    assert qs == ["robust RT", "robust SD", "robust FD", "agree_paper SD", "agree SD", "agree_paper FD", "agree FD",
                  "n_images"]
    assert t.loc["0.1", ("agree_paper FD", "paper")] == t.loc["0.1", ("agree FD", "paper")] == 95.6
    assert (t.xs("ours", axis=1, level=1).filter(like="agree_paper").values >=
            t.xs("ours", axis=1, level=1)[["agree SD", "agree FD"]].values).all()
    for methods, metric in (("paper", "agree_paper"), ("ours", "agree")):
        c = _table1_cells(df, "mnist", methods)
        assert sorted(c.quantity.unique()) == ["agree FD", "agree SD", "robust FD", "robust RT", "robust SD"]
        got = c[(c.quantity == "agree FD") & (c.eps == "0.1")].ours.item()
        assert got == t.loc["0.1", (f"{metric} FD", "ours")]
    plain = _table1_cells(df[df.metric != "agree_paper"], "mnist", "paper")  # a run without it: its one agreement
    assert plain[plain.quantity == "agree FD"].ours.tolist() == t[("agree FD", "ours")].tolist()


def test_reference_tables_are_the_papers_files():
    t1 = paper_table("table1_robustness")
    assert len(t1) == 18 and t1.iloc[0].rob_acc_RT == 97.9
    with pytest.raises(ValueError, match="choose one of: paper_clean_accuracy, table1_robustness"):
        paper_table("table9")


def test_attack_study_is_nested_in_restarts_and_feeds_table3(tmp_path):
    cfg = AttackStudyConfig("mnist", ("fd",), 0.1, (0, 1, 2), steps=(1, 5), restarts=(1, 2, 5))
    df = attack_strength(cfg, progress=False)
    wide = df.pivot_table(index=["strategy", "steps", "image"], columns="restarts", values="value")
    assert (wide[2] >= wide[1]).all() and (wide[5] >= wide[2]).all()
    s = plateau_summary(df.assign(steps=df.steps.replace({5: 50})))  # treat 5 steps as "50" for the summary
    assert set(s.strategy) == {"max", "classes"} and (s["within_1e-3"] <= 1).all()
    t3cfg = table3_study(dataset="mnist", eps=0.1)
    assert t3cfg.steps == (1, 5, 25, 50) and t3cfg.restarts == (5,)
    t = table3(df[df.steps == 1].assign(steps=50))
    first = df.image.iloc[0]
    assert ("x1", first, "FD", "max") in t.index and ("x3", df.image.iloc[-1], "FD", "classes") in t.index
    assert t.loc[("x1", first, "FD", "max"), "paper PGD-50"] == 0.07111  # the paper's x1, FD
    assert pd.isna(t.loc[("x3", df.image.iloc[-1], "FD", "max"), "paper PGD-50"])  # missing in the paper


def test_cli_evaluate_prints_table1_and_resumes(tmp_path, capsys):
    args = ["evaluate", "--dataset", "mnist", "--students", "fd", "--eps", "0,0.1", "--n-images", "4",
            "--steps", "2", "--restarts", "1", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "robust RT" in out and "agree FD" in out
    assert len(load_results(tmp_path)) == 2 * 4 + 4 * 5 + 4 * 7  # teacher; student at eps 0; at eps 0.1
    assert main(["evaluate", "--dataset", "mnist", "--students", "xx", "--out", str(tmp_path)]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert main(["evaluate", "--dataset", "mnist", "--eps", "3", "--out", str(tmp_path)]) == 2


def test_export_publishes_compressed_rows_records_and_tables(tmp_path):
    from fkd.book.publish import export_empirical as export
    from fkd.book.tables import fidelity_table, strategy_table

    df = evaluate(small(), tmp_path / "run", progress=False)
    dest = export(tmp_path / "run", tmp_path / "pub")
    pd.testing.assert_frame_equal(load_results(dest), df)  # reads empirical.csv.gz
    for name in ("config.json", "run.json", "table1.csv", "emplb.csv", "emplb_strategies.csv", "fidelity.csv"):
        assert (dest / name).exists(), name
    t1 = pd.read_csv(dest / "table1.csv", index_col=0, dtype={"eps": str})
    assert "agree FD paper" in t1.columns and t1.loc["0.1", "robust RT paper"] == 94.9
    st = strategy_table(df)
    assert (st["both"] >= st[["max", "classes"]].max(axis=1) - 1e-9).all()
    assert ((st.classes_better + st.max_better) <= 1).all()
    fid = fidelity_table(df)
    assert set(fid.eps) == {"0", "0.1"} and fid.top1_agree.between(0, 100).all() and (fid.kl >= 0).all()


def test_ordering_flips_counts_changed_rankings():
    from fkd.experiments.attack_study import ordering_flips

    rows = []
    # image 0: a < b at 50 steps but a > b at 1 step (a flip); image 1: a < b at both; image 2: a tie at 1 step
    for image, at1, at50 in ((0, (0.3, 0.2), (0.3, 0.4)), (1, (0.1, 0.2), (0.1, 0.2)), (2, (0.2, 0.2), (0.1, 0.3))):
        for steps, (va, vb) in ((1, at1), (50, at50)):
            rows += [{"strategy": "max", "steps": steps, "restarts": 5, "image": image, "student": "a", "value": va},
                     {"strategy": "max", "steps": steps, "restarts": 5, "image": image, "student": "b", "value": vb}]
    out = ordering_flips(pd.DataFrame(rows), "a", "b").set_index("steps")
    assert out.loc[1, "flipped"] == pytest.approx(1 / 3) and out.loc[50, "flipped"] == 0.0


def test_the_teacher_alone_is_evaluated_and_published(tmp_path):
    """No students: the teacher's Table 1 row (robust accuracy per eps) and nothing that needs a pair."""
    from fkd.book.publish import export_empirical as export

    cfg = small(students=(), units="normalised", n_images=4)
    df = evaluate(cfg, tmp_path / "run", progress=False)
    assert set(df.student) == {"rt"} and set(df.metric) == {"correct"} and set(df.units) == {"normalised"}
    dest = export(tmp_path / "run", tmp_path / "pub")
    assert (dest / "table1.csv").exists() and not (dest / "emplb.csv").exists()
    with pytest.raises(ValueError, match="teacher is always evaluated"):
        small(students=("rt",))
