"""The verification driver: shards, merge, resume, and the soundness guard (shipped MNIST zoo, CROWN)."""
import json

import pandas as pd
import pytest

from fkd.__main__ import main
from fkd.metrics import Attack
from fkd.verify import VerifyConfig, merge, parse_shard, verify

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


def test_an_upper_bound_below_the_attack_is_reported_as_a_bug(tmp_path, monkeypatch):
    import fkd.verify as v

    real = v.faithub
    monkeypatch.setattr(v, "faithub", lambda *a, **k: real(*a, **k)._replace(value=0.0))
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
