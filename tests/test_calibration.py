"""Expected calibration error and reliability data (fkd.experiments.calibration), with oracles."""
import pytest
import torch

from fkd.experiments.calibration import N_BINS, calibration_config, ece, ece_of_probs, ece_table, reliability


def test_perfectly_calibrated_synthetic_predictor_has_ece_near_zero(pinned):
    n = 200_000
    conf = torch.rand(n, generator=pinned) * 0.9 + 0.1
    correct = torch.rand(n, generator=pinned) < conf       # right with probability = its confidence
    assert ece(conf, correct) < 0.01


def test_constant_overconfident_predictor_by_hand():
    conf = torch.full((10,), 0.9)
    correct = torch.tensor([True] * 6 + [False] * 4)          # 60 % accuracy at 90 % confidence
    assert ece(conf, correct) == pytest.approx(0.3)
    assert ece(conf, torch.ones(10, dtype=torch.bool)) == pytest.approx(0.1)
    # two bins by hand: 0.55 (acc 1/2) and 0.95 (acc 1): (2 * 0.05 + 2 * 0.05) / 4
    assert ece(torch.tensor([0.55, 0.55, 0.95, 0.95]), torch.tensor([True, False, True, True])) == pytest.approx(0.05)


def test_ece_lies_in_unit_interval_and_bins_are_half_open(pinned):
    for _ in range(20):
        conf = torch.rand(50, generator=pinned)
        correct = torch.rand(50, generator=pinned) < 0.5
        assert 0.0 <= ece(conf, correct) <= 1.0
    r = reliability(torch.tensor([0.0, 0.1, 0.1000001, 1.0], dtype=torch.float64), torch.tensor([True, True, False, True]), 10)
    assert r["count"].tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]  # (0, 0.1] holds 0 and 0.1
    assert r["count"].sum() == 4 and len(r) == 10 and r.accuracy.isna().sum() == 7
    assert ece(torch.ones(5), torch.zeros(5, dtype=torch.bool)) == pytest.approx(1.0)


def test_ece_of_probs_and_table_from_rows():
    import pandas as pd
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = torch.tensor([0, 0, 0])
    # bins of 15: 0.9 -> right, 0.8 -> wrong, 0.6 -> right: (0.1 + 0.8 + 0.4) / 3
    assert ece_of_probs(probs, labels, N_BINS) == pytest.approx((0.1 + 0.8 + 0.4) / 3)
    rows = pd.DataFrame([
        {"dataset": "mnist", "student": "sd-a0.5", "point": "clean", "eps": 0.0, "image": i, "label": 0,
         "model": m, "confidence": c, "predicted": p}
        for i, (ct, pt, cs, ps) in enumerate([(0.9, 0, 0.9, 0), (0.8, 1, 0.9, 0), (0.6, 0, 0.9, 1)])
        for m, c, p in (("teacher", ct, pt), ("student", cs, ps))])
    t = ece_table(rows).iloc[0]
    assert t.ece_teacher == pytest.approx((0.1 + 0.8 + 0.4) / 3, abs=1e-4)
    assert t.ece_student == pytest.approx(abs(2 / 3 - 0.9), abs=1e-4)
    assert t.ece_diff == pytest.approx(t.ece_student - t.ece_teacher, abs=2e-4)
    assert t.top1_agree == pytest.approx(1 / 3, abs=1e-4) and t.n == 3


def test_calibration_rows_on_two_images(tmp_path):
    import pandas as pd
    from fkd.experiments.calibration import COLUMNS, calibration_rows
    from fkd.metrics import Attack
    cfg = calibration_config("mnist", ["sd"], n_images=2)
    cfg = type(cfg)(**{**cfg.__dict__, "attack": Attack(steps=3, restarts=1)})
    rows = pd.DataFrame(calibration_rows(cfg), columns=COLUMNS)
    assert len(rows) == 2 * 2 * 2 and set(rows.point) == {"clean", "emplb"} and rows.confidence.between(0, 1).all()
    clean = rows[rows.point == "clean"]
    assert (clean.eps == 0).all() and (rows[rows.point == "emplb"].eps == 0.1).all()
    with pytest.raises(ValueError, match="choose one of"):
        calibration_config("mnist", ["kd"])
