"""Run records per stage (fkd.book.stages), the solver licence in records, and the readings of missed claims."""
import json

import pandas as pd
import pytest

from fkd.book import readings
from fkd.book import stages
from fkd.bounds.solvers import solver_licences


def _run(path, walls, solvers=None, rows=None):
    path.mkdir(parents=True)
    recs = [{"config": {"n_images": 3, "students": ["fd-a0.5"], "method": "lp"}, "seed": 0, "wall_time_s": w,
             "workers": 2, "git_commit": c, "machine": {"device": "cpu", "device_name": "x86_64", "cpu_count": 2},
             "packages": {"gurobipy": "13.0.3"}, **({"solvers": solvers} if solvers else {})}
            for w, c in zip(walls, ("a" * 40, "b" * 40 + "-dirty"))]
    (path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (path / "run.json").write_text(json.dumps(recs[-1]))
    if rows is not None:
        rows.to_csv(path / "verify.csv.gz", index=False)


def test_a_stage_sums_every_invocation_and_names_its_solver_and_licence(tmp_path):
    _run(tmp_path / "certified" / "mnist", [600.0, 300.0], {"gurobi": "gurobipy 13.0.3, size-limited licence"},
         pd.DataFrame({"solver": ["gurobi", "gurobi+highs"]}))
    _run(tmp_path / "empirical" / "mnist", [36.0])
    recs = stages.stage_records(tmp_path)
    v = recs[recs.stage == "verify (Tables 2, 5)"].iloc[0]
    assert (v.runs, v.wall_time_s, v.images) == (2, 900.0, 3)
    assert v.solver == "gurobi, gurobi+highs" and v.licence == "gurobi: gurobipy 13.0.3, size-limited licence"
    assert v.commit == "aaaaaaa, bbbbbbb-dirty"
    train = recs[(recs.dataset == "mnist") & (recs.stage == "train students")].iloc[0]
    assert train.runs == 4 and "kdiga" not in train.what  # the paper's students only (sd, ard, rslad, fd)
    hours = stages.wall_times(recs)
    assert hours.loc["mnist", "verify (Tables 2, 5)"] == 0.25 and hours.loc["mnist", "evaluate (Tables 1, 5)"] == 0.01
    assert hours.loc["mnist", "total"] == pytest.approx(hours.loc["mnist"].drop("total").sum(), abs=0.01)
    assert "cifar10" in hours.index  # trained in the shipped zoo, not evaluated here: its other stages are empty
    with pytest.raises(FileNotFoundError, match="no run record in .*Fix"):
        stages.invocations(tmp_path / "nothing")


def test_an_old_record_says_its_licence_was_not_recorded(tmp_path):
    _run(tmp_path / "certified" / "mnist", [1.0], rows=pd.DataFrame({"solver": ["gurobi"]}))
    v = stages.stage_records(tmp_path).query("stage == 'verify (Tables 2, 5)'").iloc[0]
    assert v.licence.startswith("not recorded (gurobipy 13.0.3")


def test_records_name_gurobis_licence():
    gurobi = solver_licences()["gurobi"]
    assert gurobi.startswith("gurobipy ") and ("size-limited licence" in gurobi or "unrestricted" in gurobi)


def _rows(fd, rslad, eps=0.1):
    """Verify rows of three students on len(fd) images (SD always worst)."""
    out = []
    for i, (f, r) in enumerate(zip(fd, rslad)):
        for s, v, e in (("fd-a0.5", f, f / 2), ("rslad-a0.5", r, r / 2), ("sd-a0.5", 1.0, 0.9), ("ard-a0.5", 0.99, 0.9)):
            out.append({"dataset": "mnist", "teacher": "rt", "student": s, "eps": eps, "image": i, "emplb": e,
                        "faithub_tight": v})
    return pd.DataFrame(out)


def test_a_missed_claim_is_read_as_noise_or_as_a_real_difference():
    empirical = pd.DataFrame(columns=["dataset", "student", "eps", "image", "metric", "value"])
    # FD above RSLAD on every image by 0.01: a real difference, and EMPLB orders them the same way
    real = readings.noise(empirical, {"mnist": _rows([0.51] * 50, [0.50] * 50)})
    assert real[["claimed", "rival", "images", "reading"]].values.tolist() == [["fd-a0.5", "rslad-a0.5", 50, "real on our runs"]]
    assert real["diff"].iloc[0] == pytest.approx(0.01) and real["EMPLB agrees"].iloc[0]
    # FD above RSLAD on average by 0.002 with +-0.2 swings between images: within noise
    swing = [0.502 + (0.2 if i % 2 else -0.2) for i in range(50)]
    noisy = readings.noise(empirical, {"mnist": _rows(swing, [0.5] * 50)})
    assert noisy.reading.tolist() == ["within noise"] and noisy.low.iloc[0] < 0 < noisy.high.iloc[0]
    text = readings.explain(pd.concat([real, noisy.assign(dataset="fashion-mnist")]), {("mnist", "fd-a0.5"): 92.5})
    assert "real on our runs" in text[0] and "same way in every one" in text[0] and "fd-a0.5 92.5 %" in text[0]
    assert "within image-to-image noise" in text[1]
    # a claim that holds has nothing to read
    assert readings.noise(empirical, {"mnist": _rows([0.4] * 5, [0.5] * 5)}).empty


def test_a_faithub_that_falls_with_eps_is_read_against_the_same_student():
    rows = pd.concat([_rows([0.3, 0.31], [0.5, 0.5], eps=0.1), _rows([0.2, 0.25], [0.6, 0.6], eps=0.2)])
    misses = readings.noise(pd.DataFrame(columns=["dataset"]), {"mnist": rows})
    fall = misses[misses.claim.str.startswith("(iv)")]
    assert fall[["claimed", "rival", "eps", "rival eps"]].values.tolist() == [["fd-a0.5", "fd-a0.5", "0.2", "0.1"]]
    assert fall["diff"].iloc[0] == pytest.approx(-0.08)
