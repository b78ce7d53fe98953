"""All methods on one page (fkd.book.related): joins, tables and the overview on synthetic published runs."""
import json

import pandas as pd
import pytest

import fkd.book.related as rel
from fkd.book import tables


def _emp(students, images, eps=(0.0, 0.1)):
    rows = []
    for s in students:
        for e in eps:
            for i in images:
                ok = float(i % 2 == 0 or s == "rt")
                rows.append({"dataset": "mnist", "teacher": "rt", "student": s, "method": s.split("-a")[0], "alpha": "",
                             "eps": e, "image": i, "metric": "correct", "value": ok, "steps": 50, "restarts": 5, "seed": 0})
                if s != "rt":
                    rows += [{**rows[-1], "metric": "agree", "value": float(i != 3)},
                             {**rows[-1], "metric": "emplb", "value": 0.1 * len(s) * e}]
    return pd.DataFrame(rows)


def _cert(students, images, eps=0.1):
    return pd.DataFrame([{"dataset": "mnist", "teacher": "rt", "student": s, "eps": eps, "image": i, "emplb": 0.01 * len(s),
                          "faithub_paper": 0.6, "faithub_tight": 0.5 + 0.01 * k} for k, s in enumerate(students)
                         for i in images])


def _write(d, frame, name, n):
    d.mkdir(parents=True, exist_ok=True)
    frame.to_csv(d / name, index=False)
    (d / "run.json").write_text(json.dumps({"config": {"n_images": n}, "seed": 0, "wall_time_s": 1.0}))


@pytest.fixture()
def results(tmp_path):
    old = ["rt", "sd-a0.5", "fd-a0.5"]
    _write(tmp_path / "empirical" / "mnist", _emp(old, range(6)), "empirical.csv.gz", 6)
    _write(tmp_path / "related" / "mnist" / "empirical", _emp(["rt", "kdiga-a0.5"], range(4)), "empirical.csv.gz", 4)
    _write(tmp_path / "certified" / "mnist", _cert(old[1:], range(5)), "verify.csv.gz", 5)
    _write(tmp_path / "related" / "mnist" / "certified", _cert(["kdiga-a0.5"], range(3)), "verify.csv", 3)
    return tmp_path


def test_runs_are_joined_on_the_images_both_evaluated(results):
    runs = rel.related_runs("mnist", results)
    assert set(runs.empirical.image) == {0, 1, 2, 3} and set(runs.certified.image) == {0, 1, 2}
    assert (runs.empirical.student == "rt").sum() == 2 * 4          # the teacher's rows once, not twice
    assert runs.calibration is None and runs.agreement is None and len(runs.records) == 4
    t1 = rel.table1_all(runs)
    assert list(t1.columns.get_level_values(1)[:4]) == ["RT", "SD", "FD", "KDIGA"]
    assert t1.loc["0.1", ("robust", "KDIGA")] == 50.0 and t1.loc["0.1", ("robust", "RT")] == 100.0
    t2 = rel.table2_all(runs)
    assert t2.loc["0.1", ("FAITHUB", "KDIGA")] == 0.5 and t2.loc["0.1", ("n_images", "")] == 3


def test_overview_reads_certified_agreement_where_published(results):
    agr = pd.DataFrame([{"student": "fd-a0.5", "eps": 0.1, "image": i, "agreement": a}
                        for i, a in enumerate(["certified", "unknown", "counterexample"])])
    _write(results / "beyond" / "agreement-mnist", agr, "verify.csv", 3)
    f = rel.overview(rel.related_runs("mnist", results))
    assert f.loc["FD", "certified agreement"] == pytest.approx(100 / 3, abs=1e-3) and pd.isna(f.loc["KDIGA", "certified agreement"])
    # EMPLB on the certified run's images (beside FAITHUB), not the empirical run's 0.1 * len * eps
    assert f.loc["KDIGA", "EMPLB"] == pytest.approx(0.01 * 10) and f.loc["SD", "clean acc."] == 50.0
    assert (f.EMPLB.dropna() <= f.FAITHUB.dropna()).all()
    # empirical agreement beside certified on the same images: FD's on images 0-2, SD's on all four
    assert f.loc["FD", "agreement"] == 100.0 and f.loc["SD", "agreement"] == 75.0
    assert (f["certified agreement"].dropna() <= f.agreement[f["certified agreement"].notna()]).all()
    lines = rel.statements(f)
    assert any(line.startswith("EMPLB") and "best SD" in line and "KDIGA 3" in line for line in lines)


def test_the_papers_tables_leave_the_related_students_out(results):
    runs = rel.related_runs("mnist", results)
    t = tables.table1(runs.empirical, "mnist")
    assert not any("KDIGA" in c[0] for c in t.columns) and any("FD" in c[0] for c in t.columns)
