"""Relative calibration, the paper's "connection to model calibration".

The paper calls a student *relatively calibrated* to its teacher when their confidences agree near
the data (section 3). Classical calibration asks whether a model's confidence matches its accuracy.
This module measures the second for teacher and student side by side, at the same points: the
clean test images and each (teacher, student) pair's EMPLB point (the point where PGD found the
largest ||f_t - f_s||_inf, ``fkd.empirical_bound.emplb``), so a student that is faithful there should also
be about as calibrated as its teacher there.

Expected calibration error (Guo et al. 2017) with ``n_bins`` equal-width confidence bins: image i
falls in bin b = ceil(c_i * n_bins) - 1 (bins (b/n, (b+1)/n], the first one also holding 0), where
c_i = max_k p_ik is the top-1 confidence, and

    ECE = sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|,

in [0, 1] (empty bins contribute 0). Per-image rows are kept, so any bin count can be recomputed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor

from fkd.config import Dataset, EpsUnits, eps_label, parse, resolve_model
from fkd.empirical_bound import EmplbStrategy, emplb
from fkd.metrics import PAPER_ATTACK, Attack
from fkd.experiments.study import StudyConfig, zoo_students
from fkd.experiments.runner import RunDir, invocation, task_generator, torch_threads, write_record
from fkd.units import pixel_label, radius

#: The paper's main radius per dataset (pixel units): where the chapters compare the students.
MAIN_EPS = {Dataset.MNIST: 0.1, Dataset.FASHION_MNIST: 8 / 255, Dataset.CIFAR10: 8 / 255}
N_BINS = 15
COLUMNS = ["dataset", "student", "point", "eps", "units", "eps_pixel", "image", "label", "model", "confidence", "predicted"]


def _bins(confidence: Tensor, n_bins: int) -> Tensor:
    """Bin index (N,) of top-1 confidences (N,) in [0, 1]: (b/n, (b+1)/n] -> b, 0 -> 0."""
    return (torch.ceil(confidence.double() * n_bins).long() - 1).clamp(0, n_bins - 1)


def reliability(confidence: Tensor, correct: Tensor, n_bins: int = N_BINS):
    """Per-bin reliability data of one model: the bars of a reliability diagram.

    Args:
        confidence: (N,) top-1 confidences in [0, 1]. correct: (N,) bool, top-1 prediction right.
    Returns:
        DataFrame with one row per bin: bin, lo, hi, count, confidence (mean), accuracy (NaN where empty).
    """
    import pandas as pd

    b = _bins(confidence, n_bins)
    count = torch.bincount(b, minlength=n_bins).double()
    conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, b, confidence.double())
    acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, b, correct.double())
    nan = torch.full_like(count, float("nan"))
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    return pd.DataFrame({"bin": range(n_bins), "lo": edges[:-1].numpy(), "hi": edges[1:].numpy(),
                         "count": count.long().numpy(),
                         "confidence": torch.where(count > 0, conf / count.clamp(min=1), nan).numpy(),
                         "accuracy": torch.where(count > 0, acc / count.clamp(min=1), nan).numpy()})


def ece(confidence: Tensor, correct: Tensor, n_bins: int = N_BINS) -> float:
    """Expected calibration error of top-1 confidences (N,) against correctness (N,) bool, in [0, 1]."""
    r = reliability(confidence, correct, n_bins)
    r = r[r["count"] > 0]
    return float((r["count"] * (r["accuracy"] - r["confidence"]).abs()).sum() / max(int(r["count"].sum()), 1))


def ece_of_probs(probs: Tensor, labels: Tensor, n_bins: int = N_BINS) -> float:
    """ECE of predicted distributions (N, K) against labels (N,)."""
    conf, pred = probs.max(-1)
    return ece(conf, pred == labels, n_bins)


@dataclass(frozen=True)
class CalibrationConfig(StudyConfig):
    """One calibration run: the students of one dataset, clean and at the EMPLB points of ``eps``."""
    dataset: Dataset
    students: tuple[str, ...]
    eps: float
    n_images: int = 1000
    teacher: str = "rt"
    attack: Attack = field(default_factory=lambda: PAPER_ATTACK)
    strategy: EmplbStrategy = EmplbStrategy.BOTH
    seed: int = 0
    units: EpsUnits | None = None

    def __post_init__(self) -> None:
        d = self._dataset_units()
        self._set(strategy=parse(EmplbStrategy, self.strategy))
        self._set(students=zoo_students(d, self.students))
        if not self.students or "rt" in self.students or not 0 <= self.eps <= 1 or self.n_images < 1:
            raise ValueError("name at least one student (not rt), eps in [0, 1] and n_images >= 1")



def calibration_config(dataset: Dataset | str, students: Iterable[str], *, eps: float | None = None,
                       n_images: int = 1000, seed: int = 0, units: EpsUnits | str | None = None) -> CalibrationConfig:
    """The chapter's run: ``eps`` defaults to the dataset's main radius (0.1 MNIST, 8/255 otherwise)."""
    d = parse(Dataset, dataset)
    return CalibrationConfig(d, tuple(students), MAIN_EPS[d] if eps is None else eps, n_images, seed=seed,
                             units=units)


def _rows(cfg: CalibrationConfig, student: str, point: str, image: Tensor, y: Tensor,
          probs: dict[str, Tensor]) -> list[dict[str, Any]]:
    eps = cfg.eps if point == "emplb" else 0.0
    out = []
    for model, p in probs.items():
        conf, pred = p.max(-1)
        out += [{"dataset": cfg.dataset.value, "student": student, "point": point, "eps": eps,
                 "units": cfg.units.value, "eps_pixel": pixel_label(radius(eps, cfg.units, cfg.dataset)),
                 "image": int(image[i]), "label": int(y[i]), "model": model, "confidence": float(conf[i]),
                 "predicted": int(pred[i])} for i in range(len(y))]
    return out


@torch_threads(1)
def calibration_rows(cfg: CalibrationConfig, zoo_root: Path | None = None, batch: int = 250) -> list[dict[str, Any]]:
    """Per-image top-1 confidence and prediction of teacher and student, clean and at each pair's
    EMPLB point (``fkd.empirical_bound.emplb``, the paper's attack, both objectives).

    Returns:
        rows with COLUMNS; ``point`` clean or emplb, ``model`` teacher or student.
    """
    from fkd.data import eval_subset
    from fkd.zoo import load_model

    x, y, idx = eval_subset(cfg.dataset, cfg.n_images)
    teacher = load_model(cfg.dataset, *resolve_model(cfg.dataset, cfg.teacher), root=zoo_root,
                         units=cfg.units).requires_grad_(False)
    r = radius(cfg.eps, cfg.units, cfg.dataset)
    rows: list[dict[str, Any]] = []
    for name in cfg.students:
        student = load_model(cfg.dataset, *resolve_model(cfg.dataset, name), root=zoo_root,
                             units=cfg.units).requires_grad_(False)
        for a in range(0, len(y), batch):
            xb, yb, ib = x[a:a + batch], y[a:a + batch], idx[a:a + batch]
            g = task_generator(cfg.seed, cfg.dataset.value, name, cfg.eps, a, "calibration")
            point = emplb(teacher, student, xb, r, cfg.attack, cfg.strategy, g).point
            with torch.no_grad():
                for kind, pts in (("clean", xb), ("emplb", point)):
                    probs = {"teacher": teacher(pts).softmax(-1), "student": student(pts).softmax(-1)}
                    rows += _rows(cfg, name, kind, ib, yb, probs)
    return rows


def ece_table(rows, n_bins: int = N_BINS):
    """ECE of teacher and student and their difference per (dataset, student, point).

    Args:
        rows: DataFrame of ``calibration_rows`` (COLUMNS).
    Returns:
        DataFrame: dataset, student, point, eps, eps_label, n, acc_teacher, acc_student, conf_teacher,
        conf_student, ece_teacher, ece_student, ece_diff (student - teacher), top1_agree.
    """
    import pandas as pd

    out = []
    for (d, s, p), g in rows.groupby(["dataset", "student", "point"], sort=False):
        w = g.pivot_table(index="image", columns="model", values=["confidence", "predicted"])
        label = g.groupby("image").label.first().reindex(w.index)
        r: dict[str, Any] = {"dataset": d, "student": s, "point": p, "eps": float(g.eps.iloc[0]),
                             "eps_label": eps_label(float(g.eps.iloc[0])), "n": len(w)}
        for m in ("teacher", "student"):
            conf = torch.tensor(w[("confidence", m)].to_numpy())
            correct = torch.tensor((w[("predicted", m)].to_numpy() == label.to_numpy()))
            r[f"acc_{m}"], r[f"conf_{m}"] = float(correct.double().mean()), float(conf.mean())
            r[f"ece_{m}"] = ece(conf, correct, n_bins)
        r["ece_diff"] = r["ece_student"] - r["ece_teacher"]
        r["top1_agree"] = float((w[("predicted", "teacher")] == w[("predicted", "student")]).mean())
        out.append(r)
    return pd.DataFrame(out).round(4)


def reliability_table(rows, n_bins: int = N_BINS):
    """Per-bin reliability data of every (dataset, student, point, model) in ``rows`` (long DataFrame)."""
    import pandas as pd

    parts = []
    for (d, s, p, m), g in rows.groupby(["dataset", "student", "point", "model"], sort=False):
        conf = torch.tensor(g.confidence.to_numpy())
        r = reliability(conf, torch.tensor((g.predicted == g.label).to_numpy()), n_bins)
        parts.append(r.assign(dataset=d, student=s, point=p, model=m))
    return pd.concat(parts, ignore_index=True)


def _finished(out: Path, cfg: CalibrationConfig) -> bool:
    """Whether ``out`` holds the per-image rows of a finished run of ``cfg``."""
    import json

    done = out / "run.json"
    return (done.exists() and (out / "calibration.csv.gz").exists()
            and json.loads(done.read_text()).get("config") == json.loads(json.dumps(cfg.to_dict())))


def run(cfg: CalibrationConfig, out: Path | str, n_bins: int = N_BINS) -> Path:
    """Compute ``cfg`` into ``out``: calibration.csv.gz (per-image rows) and run.json (config, seed,
    wall time, package versions, machine, commit), then ece.csv and reliability.csv with ``n_bins``
    bins (``fkd.book.reliability.write_figures`` draws them). The rows of a finished run of the same config in
    ``out`` are kept, not recomputed (the tables and figures are redrawn from them)."""
    import pandas as pd

    from fkd.provenance import record

    from fkd.zoo import weights_sha256

    out = Path(out)
    models = {m: weights_sha256(cfg.dataset, m, cfg.units) for m in (cfg.teacher, *cfg.students)}
    with RunDir(out).hold(cfg.fingerprint(), cfg.to_dict(), "choose another --out (students, eps, images, attack, "
                          "seed or units differ)", models):
        if _finished(out, cfg):
            rows = load(out)
        else:
            provenance = record()
            t0 = time.perf_counter()
            base = {"config": cfg.to_dict(), "seed": cfg.seed, **provenance}
            with invocation(out, base):
                rows = pd.DataFrame(calibration_rows(cfg), columns=COLUMNS)
            tmp = out / "calibration.csv.gz.tmp"
            rows.to_csv(tmp, index=False, compression="gzip")
            tmp.replace(out / "calibration.csv.gz")
            write_record(out, {**base, "wall_time_s": round(time.perf_counter() - t0, 1)})
        ece_table(rows, n_bins).to_csv(out / "ece.csv", index=False)
        reliability_table(rows, n_bins).round(4).to_csv(out / "reliability.csv", index=False)
    return out


def load(run_dir: Path | str):
    """The per-image rows of a calibration run directory (``calibration.csv.gz``)."""
    import pandas as pd

    path = Path(run_dir) / "calibration.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist. Fix: run `python -m fkd calibrate ...` first.")
    return pd.read_csv(path)
