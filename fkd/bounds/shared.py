"""FAITHUB of one image for one teacher and many students, each network bounded once (eqs. 9-11).

An evaluation bounds the same teacher against several students on the same image: ``ImageBounds``
computes each network's bounds once (logit bounds for paper mode, refinable d_ij bounds for tight
mode) and reuses them for every student and both modes. With ``method`` lp or milp, tight mode
refines only the pairs that decide eq. 11 (``refine.faithub_refined``), within ``budget`` CPU
seconds per student (``fkd.bounds.budget``); paper mode solves every logit (``output_bounds``), as the paper does.

Cost is charged to the call that first needs it (the first student pays for the teacher).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from torch import Tensor

from ..config import parse
from .budget import Budget
from .fp import pair_margin
from .interval import Box
from .joint import cross_bounds_records, joint_faithub
from .logits import logit_diff_bounds, output_bounds
from .milp import NeuronSolve, Relax
from .modes import BoundMethod, DiffMode, Tightening, default_tightening
from .network import Net, check_net, check_pair
from .obbt import OBBT_LIMIT
from .refine import DiffBounds, faithub_refined
from .sigma import diff_bounds_from_logits, faithub_from_sigma, softmax_bounds
from .solvers import Solver, Status


@dataclass(frozen=True)
class ModeResult:
    """FAITHUB of one (student, mode): value in [0, 1], seconds spent by this call, and the solver
    calls it made (``status``: ok, time_limit if a solve stopped at its limit, failed if one failed)."""
    value: float
    seconds: float
    solves: int
    status: str
    solvers: tuple[str, ...]


def _summarise(value: float, t0: float, records: list[NeuronSolve]) -> ModeResult:
    st = {r.result.status for r in records}
    status = "failed" if Status.FAILED in st else "time_limit" if Status.TIME_LIMIT in st else "ok"
    return ModeResult(value, time.perf_counter() - t0, len(records), status,
                      tuple(sorted({r.result.solver for r in records})))


def check_tightening(method, tightening):
    """(BoundMethod, Tightening) parsed; tightening None -> the method's default (lp for lp / milp).
    ValueError if tightening is asked of a method without a solver stage."""
    method = parse(BoundMethod, method)
    tightening = default_tightening(method) if tightening is None else parse(Tightening, tightening)
    if method in (BoundMethod.INTERVAL, BoundMethod.CROWN) and tightening is not Tightening.NONE:
        raise ValueError(f"tightening {tightening.value} needs method lp or milp, got {method.value}")
    return method, tightening


@dataclass
class ImageBounds:
    """Bounds over B_eps(x0) of networks that share one image.

    Args:
        x0: one image (C, H, W) in [0, 1]; eps: the pixel radius (float or (C, 1, 1)).
        clamp: the ball intersected with [0, 1] (default), else the plain ball.
        method: interval | crown | lp | milp (``fkd.bounds.BoundMethod``): the strongest stage.
        tightening: none | lp | milp | obbt progressive tightening of intermediate layers (lp /
            milp only; None: lp for the lp and milp methods); obbt (``fkd.bounds.obbt``): LP, then a
            MILP of ``obbt_limit`` seconds per still-unstable neuron, within ``obbt_budget`` CPU
            seconds per network (None: no budget), never looser than lp.
        time_limit: wall seconds per solver call; budget: CPU seconds of tight-mode refinement per
            student (None: no budget; it includes the tightening, except obbt's, which ``obbt_budget``
            bounds). A bound cut short by either stays sound (earlier stage or dual bound).
    """
    x0: Tensor
    eps: float
    method: str = "crown"
    solver: Solver | str = Solver.AUTO
    time_limit: float = 60.0
    tightening: str | None = None
    budget: float | None = None
    clamp: bool = True
    obbt_limit: float = OBBT_LIMIT
    obbt_budget: float | None = None
    _reports: dict = field(default_factory=dict)
    _diffs: dict = field(default_factory=dict)
    _tight: dict = field(default_factory=dict)
    _held: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.method, self.tightening = check_tightening(self.method, self.tightening)

    def _key(self, net: Net) -> int:
        """The cache key of a network: its id, with the network held here, so that no other network
        can be created at the same address while this image's bounds are cached."""
        check_net(net)
        if id(net) not in self._held and tuple(net.input_shape) != tuple(self.x0.shape):
            raise ValueError(f"a network for inputs shaped {tuple(net.input_shape)} meets an image shaped "
                             f"{tuple(self.x0.shape)}: lower it for this image's shape (fkd.bounds.as_net)")
        held = self._held.setdefault(id(net), net)
        if held is not net:  # cannot happen while held; a guard against a reused key all the same
            raise RuntimeError("two networks share one cache key; this is a bug, please report it")
        return id(net)

    @property
    def _solving(self) -> bool:
        return self.method.value in ("lp", "milp")

    def report(self, net: Net):
        """This network's logit bounds (``BoundReport``), computed once."""
        if self._key(net) not in self._reports:
            self._reports[self._key(net)] = output_bounds(net, self.x0, self.eps, self.method, self.solver,
                                                   self.time_limit, self.tightening, self.clamp,
                                                   self.obbt_limit, self.obbt_budget)
        return self._reports[self._key(net)]

    def diffs(self, net: Net) -> DiffBounds:
        """This network's d_ij bounds (tight mode), computed once and refined in place later. If its
        logit bounds were computed (paper mode first), they are intersected in (eq. 9), so tight
        mode is never looser than paper mode."""
        if self._key(net) not in self._diffs:
            if self._solving and self._key(net) not in self._reports:
                db = DiffBounds.start(net, self.x0, self.eps, self.solver, self.tightening, self.time_limit, self.clamp,
                                      self.obbt_limit, self.obbt_budget)
            else:
                rep = self.report(net)
                direct = BoundMethod.CROWN if self._solving else self.method
                d_lo, d_up, _ = logit_diff_bounds(net, self.x0, self.eps, DiffMode.TIGHT, direct, report=rep,
                                                  clamp=self.clamp)
                z = net.forward(self.x0[None].detach().cpu())[0]
                db = DiffBounds.from_bounds(net, rep.box, rep.per_op, d_lo, d_up, self.solver,
                                            clean=z[None, :] - z[:, None], margin=pair_margin(rep.margin))
            self._diffs[self._key(net)] = db
        return self._diffs[self._key(net)]

    def paper(self, teacher: Net, student: Net) -> ModeResult:
        """FAITHUB with eq. 9 from logit intervals (the paper's mode)."""
        check_pair(teacher, student)
        t0 = time.perf_counter()
        n0 = {self._key(n): len(self._reports[self._key(n)].records) if self._key(n) in self._reports else 0 for n in (teacher, student)}
        sig, records = [], []
        for net in (teacher, student):
            rep = self.report(net)
            records += rep.records[n0[self._key(net)]:]
            sig.append(Box(*softmax_bounds(*diff_bounds_from_logits(rep.lower, rep.upper))))
        return _summarise(float(faithub_from_sigma(*sig)), t0, records)

    def tight(self, teacher: Net, student: Net) -> ModeResult:
        """FAITHUB with z_j - z_i bounded directly (never looser than paper mode with the same
        method: with lp / milp the deciding pairs are solved, the others keep CROWN bounds)."""
        check_pair(teacher, student)
        if (self._key(teacher), self._key(student)) in self._tight:  # already computed (joint mode builds on it)
            return self._tight[self._key(teacher), self._key(student)]
        t0, budget = time.perf_counter(), Budget(self.budget)
        n0 = [len(self._diffs[self._key(n)].records) if self._key(n) in self._diffs else 0 for n in (teacher, student)]
        t, s = self.diffs(teacher), self.diffs(student)
        if self._solving:
            stages = (Relax.LP,) if self.method.value == "lp" else (Relax.LP, Relax.MILP)
            if self.tightening is Tightening.OBBT:   # obbt has its own budget
                budget = Budget(self.budget)
            value, *_ = faithub_refined(t, s, stages, self.time_limit, budget)
        else:
            value = float(faithub_from_sigma(t.sigma(), s.sigma()))
        result = _summarise(value, t0, t.records[n0[0]:] + s.records[n0[1]:])
        self._tight[self._key(teacher), self._key(student)] = result
        return result

    def faithub(self, mode: DiffMode | str, teacher: Net, student: Net) -> ModeResult:
        """FAITHUB of one (teacher, student) in ``mode``: paper, tight, joint, softmax or joint_softmax."""
        mode = parse(DiffMode, mode)
        if mode is DiffMode.PAPER:
            return self.paper(teacher, student)
        if mode is DiffMode.TIGHT:
            return self.tight(teacher, student)
        if mode is DiffMode.JOINT:
            return self.joint(teacher, student)
        if mode is DiffMode.SOFTMAX:
            return self.softmax(teacher, student)
        return self.joint_softmax(teacher, student)

    def joint(self, teacher: Net, student: Net) -> ModeResult:
        """FAITHUB with teacher and student at one shared x (``fkd.bounds.joint``): the tight-mode d
        bounds of each network plus cross bounds on d^t - d^s from the joint network (CROWN; LP on
        the joint network with lp / milp). Never looser than tight mode (capped by it); its seconds
        and solves include the tight-mode result it builds on."""
        t0 = time.perf_counter()
        cached = (self._key(teacher), self._key(student)) in self._tight
        tight = self.tight(teacher, student)
        t, s = self.diffs(teacher), self.diffs(student)
        cb, records = cross_bounds_records(teacher, student, self.x0, self.eps, "lp" if self._solving else "crown",
                                           self.solver, self.time_limit, self.clamp, t.margin + s.margin)
        value, _ = joint_faithub(t.lower, t.upper, s.lower, s.upper, cb)
        done = _summarise(min(value, tight.value), t0, records)
        status = "failed" if "failed" in (done.status, tight.status) else \
            "time_limit" if "time_limit" in (done.status, tight.status) else "ok"
        seconds = done.seconds + (tight.seconds if cached else 0.0)  # t0 already covers a fresh tight call
        return ModeResult(done.value, seconds, done.solves + tight.solves, status,
                          tuple(sorted(set(done.solvers) | set(tight.solvers))))

    def softmax(self, teacher: Net, student: Net) -> ModeResult:
        """FAITHUB with each network's softmax inside its program (``fkd.bounds.softmax``): tight
        mode, then per deciding class one LP for each side of sigma_i (MILP for the lower side too
        with method milp); never looser than tight mode (capped by it)."""
        from .softmax_modes import softmax_mode  # it builds ModeResults of this module

        return softmax_mode(self, teacher, student)

    def joint_softmax(self, teacher: Net, student: Net) -> ModeResult:
        """FAITHUB with both networks' softmax in one program at a shared x
        (``fkd.bounds.joint_softmax``), on top of the softmax mode; never looser than it."""
        from .softmax_modes import joint_softmax_mode

        return joint_softmax_mode(self, teacher, student)
