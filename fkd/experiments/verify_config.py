"""A certified run's frozen config: ``VerifyConfig`` (students, eps, modes, solver, budgets, shard).

``shard=(k, n)`` keeps the images whose position p in the subset has p % n == k - 1, so any
scheduler can spread a run over machines (``fkd.experiments.verify.merge`` joins the shards).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fkd.bounds import BoundMethod, DiffMode, Tightening
from fkd.bounds.obbt import obbt_options
from fkd.bounds.shared import check_tightening
from fkd.config import Dataset, Domain, EpsUnits, parse
from fkd.metrics import PAPER_ATTACK, Attack
from fkd.experiments.study import StudyConfig, as_attack, zoo_students

#: The float32 margin of the bounds a run's rows were computed with: ``derived`` (``fkd.bounds.fp``,
#: per logit from the forward error analysis; every run computed now) or ``constant`` (1e-5, the
#: runs made before it; they are read and restored as such, but never grown: their rows would mix).
FP_MARGINS = ("derived", "constant")

@dataclass(frozen=True)
class VerifyConfig(StudyConfig):
    """EMPLB and FAITHUB of ``students`` against the zoo teacher on the first ``n_images`` images
    of the fixed subset (this shard of them), for every eps and FAITHUB mode; with ``agreement``
    also certified distillation agreement (``fkd.bounds.agreement``: certified, counterexample,
    unknown, disagree_clean) per image. ``eps`` is read in ``units`` (None: the dataset's default
    reading, whose zoo is verified); the verifier's box is [x0 - r, x0 + r] & [0, 1] with r the
    pixel radius per channel (``fkd.units.radius``); ``domain`` plain drops the intersection with
    [0, 1] for both EMPLB and FAITHUB, so they still sandwich the same delta*."""
    dataset: Dataset
    students: tuple[str, ...]
    eps: tuple[float, ...]
    n_images: int
    method: BoundMethod = BoundMethod.CROWN
    modes: tuple[DiffMode, ...] = (DiffMode.PAPER, DiffMode.TIGHT)
    solver: str = "auto"
    time_limit: float = 60.0
    tightening: Tightening | None = None
    budget: float | None = None
    attack: Attack = PAPER_ATTACK
    seed: int = 0
    shard: tuple[int, int] = (1, 1)
    agreement: bool = False
    units: EpsUnits | None = None
    domain: Domain = Domain.CLAMPED
    fp_margin: str = "derived"
    obbt_limit: float | None = None
    obbt_budget: float | None = None

    def __post_init__(self) -> None:
        d = self._dataset_units()
        if self.fp_margin not in FP_MARGINS:
            raise ValueError(f"unknown fp_margin {self.fp_margin!r}; choose one of: {', '.join(FP_MARGINS)}")
        self._set(domain=parse(Domain, self.domain))
        if self.domain is Domain.PLAIN and self.agreement:
            raise ValueError("certified agreement is over the ball intersected with [0, 1]; use domain clamped")
        self._set(method=parse(BoundMethod, self.method))
        self._set(modes=tuple(parse(DiffMode, m) for m in self.modes))
        if self.tightening is not None:
            self._set(tightening=parse(Tightening, self.tightening))
        self._set(attack=as_attack(self.attack))
        self._set(students=zoo_students(d, self.students))
        self._set(eps=tuple(float(e) for e in self.eps))
        self._set(shard=tuple(int(v) for v in self.shard))
        if not self.students or "rt" in self.students:
            raise ValueError("students must name at least one student (sd, ard, rslad, fd, or e.g. fd-a0.75)")
        if not self.eps or any(not 0.0 < e <= 1.0 for e in self.eps):
            raise ValueError(f"eps must lie in (0, 1] ({self.units.value} units), got {self.eps}")
        k, n = self.shard
        if not 1 <= k <= n:
            raise ValueError(f"shard must be k/n with 1 <= k <= n, got {k}/{n}")
        if self.n_images < 1:
            raise ValueError(f"n_images must be at least 1, got {self.n_images}: pass --n-images N >= 1, "
                             f"or leave it out for the dataset's whole subset")
        if self.time_limit <= 0 or (self.budget is not None and self.budget <= 0):
            raise ValueError(f"time_limit and budget must be positive seconds, got {self.time_limit} and "
                             f"{self.budget}")
        check_tightening(self.method, self.tightening)
        obbt_options(self.tightening, self.obbt_limit, self.obbt_budget)

    #: students, eps, shard and the image count may differ between invocations: a row depends on
    #: its image's position in the fixed subset only
    VARYING = ("students", "eps", "shard", "n_images")
    OPTIONAL = ("obbt_limit", "obbt_budget")

    def fingerprint_fields(self) -> dict[str, Any]:
        keep = super().fingerprint_fields()
        if not self.agreement:  # runs made before the field existed keep their fingerprint
            keep.pop("agreement")
        if self.units is EpsUnits.PIXEL:  # so do the pixel-unit runs made before units were recorded
            keep.pop("units")
        if self.domain is Domain.CLAMPED:  # and the clamped runs made before the plain ball existed
            keep.pop("domain")
        if self.fp_margin == "constant":  # and the runs made with the constant float margin
            keep.pop("fp_margin")
        return keep

    def images(self) -> list[int]:
        """Positions in the fixed subset of this shard's images."""
        k, n = self.shard
        return [p for p in range(self.n_images) if p % n == k - 1]


def parse_shard(text: str) -> tuple[int, int]:
    """"2/8" -> (2, 8); ValueError naming the format otherwise."""
    try:
        k, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"cannot read shard {text!r}; write k/n, e.g. 2/8") from None
    return k, n
