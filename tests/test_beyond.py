"""The small pairs (fkd.small) and the "Beyond the paper" tables (fkd.book.beyond): block means, the
shipped pair's models, summaries equal to recomputed means, findings computed from the rows."""
import pandas as pd
import pytest
import torch

import fkd.book.beyond as beyond
from fkd.small import SmallPair, get_pair, load_small, pool_images, small_subset


def test_pool_images_are_block_means_in_unit_range():
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    p = pool_images(x, 4)
    assert p.shape == (3, 1, 7, 7) and p.min() >= 0 and p.max() <= 1
    assert torch.isclose(p[1, 0, 2, 5], x[1, 0, 8:12, 20:24].float().mean() / 255)


def test_small_pair_settings_are_validated():
    with pytest.raises(ValueError, match="pool must divide 28"):
        SmallPair(pool=5)
    with pytest.raises(ValueError, match="choose mnist or fashion-mnist"):
        SmallPair(dataset="cifar10")
    with pytest.raises(ValueError, match="choose one of: mnist-7x7"):
        get_pair("mnist-5x5")


def test_the_shipped_small_pair_loads_and_classifies():
    from fkd.bounds import as_net

    pair = get_pair("mnist-7x7")
    x, y, _ = small_subset(pair, 200)
    assert x.shape == (200, 1, 7, 7)
    for m in ("rt", "sd", "fd"):
        model = load_small(pair, m)
        net = as_net(model, pair.input_shape)  # the lowering checks itself against the torch forward
        acc = float((model(x).argmax(-1) == y).float().mean())
        assert acc > 0.7, (m, acc)
        assert net.in_dim == 49


def _verify_rows():
    return pd.DataFrame({
        "dataset": "mnist", "student": ["fd", "fd", "sd", "sd"], "eps": [0.05, 0.05, 0.05, 0.05],
        "image": [1, 2, 1, 2], "emplb": [0.1, 0.2, 0.3, 0.4], "faithub_paper": [0.5, 0.6, 0.9, 0.9],
        "faithub_tight": [0.4, 0.5, 0.8, 0.9], "faithub_joint": [0.3, 0.5, 0.8, 0.85],
        "seconds_tight": [0.1, 0.3, 0.2, 0.2], "seconds_joint": [1.0, 3.0, 2.0, 2.0]})


def test_joint_summary_is_the_means_and_their_ratio():
    s = beyond.joint_summary(_verify_rows()).set_index("student")
    assert s.loc["fd", "tight"] == pytest.approx(0.45) and s.loc["fd", "joint"] == pytest.approx(0.4)
    assert s.loc["fd", "joint/tight"] == pytest.approx(0.4 / 0.45, abs=1e-4)
    assert s.loc["sd", "s_joint"] == pytest.approx(2.0)
    text = beyond.joint_findings(s.reset_index())
    assert "fd" in text and "0.889" in text


def test_exact_table_and_findings_follow_the_rows():
    rows = _verify_rows().assign(delta_lower=[0.1, 0.25, 0.3, 0.45], delta_upper=[0.1005, 0.2505, 0.31, 0.46],
                                 status=["closed", "closed", "open", "open"], seconds_exact=1.0, seconds_global=2.0)
    t = beyond.exact_table(rows).set_index("student")
    assert t.loc["fd", "closed"] == 2 and t.loc["sd", "closed"] == 0
    assert t.loc["fd", "delta_upper"] == pytest.approx((0.1005 + 0.2505) / 2, abs=1e-4)
    text = beyond.exact_findings(rows)
    assert text.startswith("delta* is pinned to within 0.001 on 2 of 4")
    fig = beyond.plot_exact(rows)
    assert len(fig.axes) == 2


def test_published_agreement_never_certifies_more_than_the_attack_allows():
    for d in beyond.DATASETS:
        if not beyond.has_run("agreement", d):
            continue
        t = beyond.agreement(d)  # raises if a certified image was attacked into disagreement
        assert t["empirical %"].notna().any()  # eps without an empirical run (CIFAR-10 2/255) have none
        t = t.dropna(subset=["empirical %"])
        assert (t["certified %"] <= t["empirical %"] + 1e-9).all()
        assert ((t[["certified %", "counterexample %", "unknown %", "disagree_clean %"]].sum(axis=1) - 100).abs() < 0.2).all()


def test_a_missing_run_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="results/beyond/README.md"):
        beyond.exact_rows(run=tmp_path)
