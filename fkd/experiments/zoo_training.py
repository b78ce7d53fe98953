"""Training a zoo model: where it goes, which teacher it learns from, its resumable checkpoints.

``plan_training`` decides everything before a single step runs (and refuses to overwrite a model of
another config); ``run_training`` trains and saves the model with its teacher's record.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

from fkd.config import Method
from fkd.train_config import TrainConfig
from fkd.losses import get_method
from fkd.models import architecture
from fkd.paths import ROOT, checkpoint_dir, in_checkout, is_packaged_zoo, user_zoo_dir
from fkd.train import TrainResult
from fkd.zoo import load_from, model_path, save_model, strip_ext, units_root, with_ext


class TrainingPlan(NamedTuple):
    """Where a model goes (``stem``), its teacher (None for rt and teacher-free methods) with the
    teacher's record, its checkpoint directory, and whether the destination already holds it."""
    stem: Path
    teacher: Any
    teacher_info: dict[str, Any] | None
    checkpoints: Path
    done: bool


def _existing(stem: Path, cfg: TrainConfig, force: bool) -> bool:
    """Whether ``stem`` already holds this config's model; ValueError if it holds another's."""
    if not with_ext(stem, ".json").exists() or force:
        return False
    old = json.loads(with_ext(stem, ".json").read_text()).get("config") or {}
    try:
        same = TrainConfig.from_dict(old).fingerprint() == cfg.fingerprint()
    except (TypeError, ValueError):
        same = False
    if same:
        return True
    differs = sorted(k for k in set(old) | set(cfg.to_dict()) if old.get(k) != cfg.to_dict().get(k))
    raise ValueError(f"{stem}.safetensors holds a model of another config (it differs in {', '.join(differs)}); "
                     "refusing to overwrite it. Fix: pass --out DIR to train into another zoo, or --force")


def _teacher(cfg: TrainConfig, teacher: str | Path | None, root: Path):
    """The teacher model and its record (path, sha256, clean accuracy, profile): ``teacher``, else the
    rt of the destination zoo ``root`` when it has one, else the zoo's (``fkd.paths.zoo_dir()``)."""
    own = model_path(cfg.dataset, Method.RT, root=root, units=cfg.eps_units)
    default = own if with_ext(own, ".json").exists() else model_path(cfg.dataset, Method.RT, units=cfg.eps_units)
    t_stem = strip_ext(teacher) if teacher else default
    model, tmeta = load_from(t_stem)
    if tmeta["config"].get("eps_units") != cfg.eps_units.value:
        raise SystemExit(f"the teacher {t_stem} was trained with eps in {tmeta['config'].get('eps_units')} units, "
                         f"this student in {cfg.eps_units.value} units. Fix: pass --eps-units "
                         f"{tmeta['config'].get('eps_units')} or a teacher of the same reading (--teacher)")
    weights = with_ext(t_stem, ".safetensors").read_bytes()
    inside = in_checkout() and t_stem.resolve().is_relative_to(ROOT)
    shown = t_stem.resolve().relative_to(ROOT) if inside else t_stem
    return model, {"path": str(shown), "sha256": hashlib.sha256(weights).hexdigest(),
                   "clean_acc": tmeta["clean_acc"], "profile": tmeta["config"]["profile"]}


def plan_training(cfg: TrainConfig, out: str | Path | None = None, teacher: str | Path | None = None,
                  checkpoints: str | Path | None = None, force: bool = False) -> TrainingPlan:
    """Where ``cfg``'s model goes and what it needs.

    Args:
        out: zoo root (None: ``fkd.paths.user_zoo_dir()``: the zoo in a checkout or with ``$FKD_ZOO``,
            else ``~/.cache/fkd/zoo``); pixel-unit models go under ``pixel/``. The zoo packaged with an
            installed wheel is never written (ValueError, even with ``force``).
        teacher: a teacher file (None: the rt of the same reading in the destination zoo, else in the zoo).
        checkpoints: checkpoint directory (None: one per run under ``fkd.paths.checkpoint_dir()``).
        force: overwrite a model of another config.
    Returns:
        TrainingPlan; ``done`` when the destination already holds this config's model.
    """
    root = Path(out) if out else user_zoo_dir()
    stem = units_root(cfg.eps_units, root) / cfg.dataset.value / cfg.name
    if is_packaged_zoo(stem):
        raise ValueError(f"{stem} is inside the zoo installed with the package, which is never written. "
                         "Fix: pass --out DIR (or set FKD_ZOO to a zoo of your own)")
    if _existing(stem, cfg, force):
        return TrainingPlan(stem, None, None, Path(), True)
    model, info = _teacher(cfg, teacher, root) if get_method(cfg.method).uses_teacher else (None, None)
    run = f"{cfg.dataset.value}-{cfg.name}-{cfg.profile.value}-{cfg.fingerprint()}"
    if info:  # a student's checkpoints belong to its teacher too: another teacher, another run
        run += f"-t{info['sha256'][:12]}"
    return TrainingPlan(stem, model, info, Path(checkpoints) if checkpoints else checkpoint_dir() / run, False)


def run_training(cfg: TrainConfig, plan: TrainingPlan, **train_options) -> TrainResult:
    """Train ``cfg`` as planned and save the model (with its teacher's record) at ``plan.stem``.

    Args:
        train_options: passed to ``fkd.train.train`` (device, progress, channels_last, time_budget_s).
    Returns:
        The TrainResult (``meta["status"]`` partial when the time budget stopped it).
    """
    from fkd.train import train  # looked up at the call: a test may stand in for the trainer

    result = train(cfg, teacher=plan.teacher, checkpoint_dir=plan.checkpoints, **train_options)
    result.meta["teacher"] = plan.teacher_info
    save_model(result.model, architecture(cfg.dataset, "teacher" if cfg.method is Method.RT else "student"),
               result.meta, plan.stem)
    return result
