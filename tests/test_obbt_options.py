"""The obbt tightening's settings from the command line to ``ImageBounds``: ``--obbt-limit`` and
``--obbt-budget`` of verify and audit, checked (positive, only with ``--tightening obbt``), carried by
the frozen configs, and in their fingerprints only when set, so every published run keeps its own."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fkd.bounds.obbt import obbt_options
from fkd.cli import build_parser, main
from fkd.experiments.audit import AuditConfig
from fkd.experiments.verify_config import VerifyConfig

RESULTS = Path(__file__).resolve().parent.parent / "results"
SMALL = {"dataset": "mnist", "students": ("fd",), "eps": (0.1,), "n_images": 1, "method": "lp"}


def _published_verify_configs() -> list[Path]:
    """Every published config.json of a verify run (the fields only VerifyConfig has)."""
    return [p for p in sorted(RESULTS.rglob("config.json"))
            if {"modes", "shard", "budget"} <= set(json.loads(p.read_text()).get("config", {}))]


def test_every_published_verify_run_keeps_its_fingerprint():
    paths = _published_verify_configs()
    assert RESULTS / "certified" / "mnist" / "config.json" in paths
    for path in paths:
        meta = json.loads(path.read_text())
        cfg = VerifyConfig(**{"units": "pixel", "fp_margin": "constant", **meta["config"]})  # as restore reads it
        assert cfg.fingerprint() == meta["fingerprint"], path
        assert "obbt_limit" not in cfg.fingerprint_fields() and "obbt_budget" not in cfg.fingerprint_fields()


def test_the_obbt_settings_enter_the_fingerprint_when_set():
    base = VerifyConfig(**SMALL, tightening="obbt")
    limit = VerifyConfig(**SMALL, tightening="obbt", obbt_limit=1.0)
    budget = VerifyConfig(**SMALL, tightening="obbt", obbt_budget=30.0)
    assert len({base.fingerprint(), limit.fingerprint(), budget.fingerprint()}) == 3
    assert limit.fingerprint_fields()["obbt_limit"] == 1.0 and limit.to_dict()["obbt_budget"] is None
    audit = AuditConfig("zoo:mnist/rt", "zoo:mnist/fd", dataset="mnist", method="lp")
    assert not {"tightening", "obbt_limit", "obbt_budget"} & set(audit.fingerprint_fields())
    obbt = AuditConfig("zoo:mnist/rt", "zoo:mnist/fd", dataset="mnist", method="lp", tightening="obbt",
                       obbt_budget=5.0)
    assert obbt.fingerprint() != audit.fingerprint() and obbt.fingerprint_fields()["tightening"] == "obbt"
    assert AuditConfig.from_dict(obbt.to_dict()).fingerprint() == obbt.fingerprint()


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_settings_must_be_positive_seconds(bad):
    with pytest.raises(ValueError, match="obbt_limit must be a positive number"):
        VerifyConfig(**SMALL, tightening="obbt", obbt_limit=bad)
    with pytest.raises(ValueError, match="obbt_budget must be a positive number"):
        AuditConfig("zoo:mnist/rt", "zoo:mnist/fd", dataset="mnist", method="lp", tightening="obbt", obbt_budget=bad)


@pytest.mark.parametrize("tightening", [None, "lp", "milp"])
def test_settings_without_the_obbt_tightening_name_the_fix(tightening):
    with pytest.raises(ValueError, match="--obbt-limit set the obbt tightening.*Fix: add --tightening obbt"):
        VerifyConfig(**SMALL, tightening=tightening, obbt_limit=1.0)
    with pytest.raises(ValueError, match="--obbt-limit and --obbt-budget .*Fix: add --tightening obbt"):
        AuditConfig("zoo:mnist/rt", "zoo:mnist/fd", dataset="mnist", method="lp", tightening=tightening,
                    obbt_limit=1.0, obbt_budget=2.0)
    assert obbt_options("obbt", 0.5, None) == {"obbt_limit": 0.5}
    assert obbt_options(tightening) == {}


def test_the_flags_reach_the_configs(tmp_path, capsys):
    args = build_parser().parse_args(["verify", "--method", "lp", "--tightening", "obbt", "--obbt-limit", "0.5",
                                      "--obbt-budget", "20", "--out", str(tmp_path)])
    assert (args.obbt_limit, args.obbt_budget) == (0.5, 20.0)
    args = build_parser().parse_args(["audit", "--teacher", "t", "--student", "s", "--dataset", "mnist",
                                      "--tightening", "obbt", "--obbt-budget", "3", "--out", str(tmp_path)])
    assert (args.tightening, args.obbt_limit, args.obbt_budget) == ("obbt", None, 3.0)
    assert main(["verify", "--method", "lp", "--obbt-limit", "1", "--out", str(tmp_path / "v")]) == 2
    assert "Fix: add --tightening obbt" in capsys.readouterr().err
    assert main(["audit", "--teacher", "zoo:mnist/rt", "--student", "zoo:mnist/fd", "--dataset", "mnist",
                 "--method", "lp", "--tightening", "obbt", "--obbt-budget", "-1", "--out", str(tmp_path / "a")]) == 2
    assert "obbt_budget must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "v").exists() and not (tmp_path / "a").exists()


def test_a_verify_task_hands_the_settings_to_image_bounds(monkeypatch):
    from fkd.experiments import verify

    seen = {}

    class Stop(Exception):
        pass

    def capture(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(verify, "ImageBounds", capture)
    with pytest.raises(Stop):
        verify.run_task(VerifyConfig(**SMALL, tightening="obbt", obbt_limit=0.5, obbt_budget=7.0), 0, 0.1)
    assert seen == {"obbt_limit": 0.5, "obbt_budget": 7.0}
