"""How strong is the attack behind EMPLB? EMPLB as a function of PGD steps and restarts (Table 3).

EMPLB is a lower bound on delta* (eq. 8): its value is only as good as the attack. For every image,
student, strategy and number of steps, PGD runs ``max(restarts)`` times from independent random
starts (one restart each); the EMPLB of r restarts is the best of the first r runs, so one sweep
gives every restart count at once, and the values are nested (more restarts never lower them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

from fkd.config import Dataset, EpsUnits, eps_label, parse, resolve_model
from fkd.experiments.study import StudyConfig, zoo_students
from fkd.empirical_bound import EmplbStrategy, emplb
from fkd.metrics import Attack
from fkd.units import pixel_label, radius

STEPS = (1, 5, 10, 25, 50, 100, 200)
RESTARTS = (1, 2, 5, 10, 20)


@dataclass(frozen=True)
class AttackStudyConfig(StudyConfig):
    """EMPLB of ``students`` (zoo names) against the teacher on images ``images`` (positions in
    the fixed evaluation subset) at one ``eps``, for every steps x restarts x strategy."""
    dataset: Dataset
    students: tuple[str, ...]
    eps: float
    images: tuple[int, ...]
    steps: tuple[int, ...] = STEPS
    restarts: tuple[int, ...] = RESTARTS
    strategies: tuple[EmplbStrategy, ...] = (EmplbStrategy.MAX, EmplbStrategy.CLASSES)
    step_factor: float = 2.5
    seed: int = 0
    units: EpsUnits | None = None

    def __post_init__(self) -> None:
        d = self._dataset_units()
        self._set(students=zoo_students(d, self.students))
        self._set(strategies=tuple(parse(EmplbStrategy, s) for s in self.strategies))
        if EmplbStrategy.BOTH in self.strategies:
            raise ValueError("list the strategies to compare (max, classes); 'both' is their per-image maximum")
        if not 0 < self.eps <= 1 or not self.images or min(self.steps) < 1 or min(self.restarts) < 1:
            raise ValueError("need 0 < eps <= 1, some images, steps >= 1 and restarts >= 1")



def attack_strength(cfg: AttackStudyConfig, zoo_root=None, progress: bool = True):
    """Run the sweep; returns a tidy DataFrame with columns (dataset, teacher, student, eps, image,
    strategy, steps, restarts, value), ``value`` the EMPLB (||f_t - f_s||_inf at the best point)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from fkd.data import eval_subset
    from fkd.zoo import load_model

    x_all, _, idx_all = eval_subset(cfg.dataset)
    pick = torch.as_tensor(cfg.images)
    x, idx = x_all[pick], [idx_all[i] for i in cfg.images]
    teacher = load_model(cfg.dataset, "rt", root=zoo_root, units=cfg.units)
    rows, r_max = [], max(cfg.restarts)
    students = {s: load_model(cfg.dataset, *resolve_model(cfg.dataset, s), root=zoo_root, units=cfg.units)
                for s in cfg.students}
    rad = radius(cfg.eps, cfg.units, cfg.dataset)  # the pixel radius of cfg.eps
    jobs = [(s, strat, n) for s in cfg.students for strat in cfg.strategies for n in cfg.steps]
    for student_name, strategy, steps in tqdm(jobs, desc="attack study", disable=not progress):
        student = students[student_name]
        g = torch.Generator().manual_seed(cfg.seed)
        runs = torch.stack([emplb(teacher, student, x, rad, Attack(steps, 1, cfg.step_factor), strategy, g).value
                            for _ in range(r_max)])             # (r_max, N)
        best = runs.cummax(0).values
        for r in cfg.restarts:
            rows += [{"dataset": cfg.dataset.value, "teacher": "rt", "student": student_name, "eps": cfg.eps,
                      "units": cfg.units.value, "eps_pixel": pixel_label(rad), "image": idx[i], "strategy": strategy.value, "steps": steps, "restarts": r,
                      "value": float(best[r - 1, i])} for i in range(len(idx))]
    return pd.DataFrame(rows)


def plateau_summary(df):
    """Per student and strategy: mean EMPLB at PGD-50 x 5 (the paper's attack), at the strongest
    attack of the sweep, the share of images where PGD-50 x 5 is within 1e-3 of the strongest
    value found by any attack, and the mean gain of the strongest attack."""
    import pandas as pd

    strongest = df.groupby(["student", "image"])["value"].max().rename("best_any")
    out = []
    for (student, strategy), g in df.groupby(["student", "strategy"]):
        top = g[(g.steps == g.steps.max()) & (g.restarts == g.restarts.max())].set_index("image")["value"]
        paper = g[(g.steps == 50) & (g.restarts == 5)].set_index("image")["value"]
        best = strongest.loc[student].reindex(paper.index)
        out.append({"student": student, "strategy": strategy, "pgd50x5": paper.mean(),
                    f"pgd{g.steps.max()}x{g.restarts.max()}": top.mean(),
                    "best_any": best.mean(), "within_1e-3": float(((best - paper) <= 1e-3).mean()),
                    "mean_gain": float((best - paper).mean())})
    return pd.DataFrame(out)


def table3_study(dataset: Dataset | str = Dataset.FASHION_MNIST, eps: float = 8 / 255,
                 students: Iterable[str] = ("rslad", "fd"), images: Iterable[int] = (0, 1, 2),
                 seed: int = 0, units: EpsUnits | str | None = None) -> AttackStudyConfig:
    """Table 3's sweep: EMPLB with PGD-1/5/25/50 (5 restarts) of three F-MNIST images at 8/255,
    RSLAD against FD, with the paper's objective and with the per-class objectives. The paper does
    not say which three test images it used; ours are the first three of the fixed subset."""
    return AttackStudyConfig(dataset=dataset, students=tuple(students), eps=eps, images=tuple(images),
                             steps=(1, 5, 25, 50), restarts=(5,), seed=seed, units=units)


def describe(cfg: AttackStudyConfig) -> str:
    return (f"{cfg.dataset.value}, eps {eps_label(cfg.eps)} ({cfg.units.value}), {len(cfg.images)} images, students "
            f"{', '.join(cfg.students)}, steps {list(cfg.steps)}, restarts {list(cfg.restarts)}")


def ordering_flips(df, a: str, b: str, restarts: int | None = None):
    """Table 3's point, measured on every image of a sweep: how often the student with the lower
    EMPLB (``a`` or ``b``) at the strongest attack differs from the one at each weaker step count.

    Returns:
        DataFrame per (strategy, steps): share of images where the ordering of ``a`` and ``b`` at
        this step count differs from the ordering at the largest step count (ties of 1e-4 ignored).
    """
    import pandas as pd

    r = restarts or int(df.restarts.max())
    s = df[df.restarts == r].pivot_table(index=["strategy", "steps", "image"], columns="student", values="value")
    sign = (s[a] - s[b]).where((s[a] - s[b]).abs() > 1e-4, 0.0).apply(lambda v: (v > 0) - (v < 0))
    out = []
    for strategy, g in sign.groupby(level=0):
        final = g.xs(g.index.get_level_values(1).max(), level=1).droplevel(0)
        for steps, gs in g.groupby(level=1):
            cur = gs.droplevel([0, 1])
            both = (cur != 0) & (final.reindex(cur.index) != 0)
            out.append({"strategy": strategy, "steps": steps, "restarts": r, "images": len(cur),
                        "flipped": float(((cur != final.reindex(cur.index)) & both).mean())})
    return pd.DataFrame(out)


def run_study(cfg: AttackStudyConfig, out, zoo_root=None, progress: bool = True):
    """Run ``cfg`` into ``out``: ``attack_study.csv`` (the sweep's rows) and ``run.json`` (config, seed,
    wall time, packages, machine, commit).

    Returns:
        The rows, as ``attack_strength`` gives them.
    """
    import time
    from pathlib import Path

    from fkd.experiments.runner import RunDir, invocation, write_record
    from fkd.provenance import record
    from fkd.zoo import weights_sha256

    out = Path(out)
    models = {m: weights_sha256(cfg.dataset, m, cfg.units, zoo_root) for m in ("rt", *cfg.students)}
    with RunDir(out).hold(cfg.fingerprint(), cfg.to_dict(), "choose another --out (students, eps, images, steps, "
                          "restarts, strategies, seed or units differ)", models):
        t0 = time.perf_counter()
        base = {"config": cfg.to_dict(), "seed": cfg.seed, **record()}
        with invocation(out, base):
            df = attack_strength(cfg, zoo_root=zoo_root, progress=progress)
        tmp = out / "attack_study.csv.tmp"
        df.to_csv(tmp, index=False)
        tmp.replace(out / "attack_study.csv")
        write_record(out, {**base, "wall_time_s": round(time.perf_counter() - t0, 1)})
    return df
