"""LP/MILP backends behind one interface: Gurobi (gurobipy), HiGHS (highspy), and ``auto``.

A backend loads one ``Program`` (``fkd.bounds.milp``) and then maximises many objectives over it
(``Session.maximize``), each under a time limit, single-threaded. Every answer is a *sound* upper
bound on the maximum:

- a MILP returns the solver's proven dual bound (Gurobi ``ObjBound``, HiGHS ``mip_dual_bound``),
  never the incumbent, whether it finished (``optimal``: the dual bound is within the MIP gap
  tolerance of the incumbent, and still above the true maximum) or hit the time limit;
- an LP returns a bound computed by us from the solver's dual vector, not the solver's objective
  value (``fkd.bounds.dual.safe_lp_bound``), so it holds whatever the solver's tolerances. An LP
  that did not reach optimality gives no bound (``failed``);
- every bound is widened by the margin of ``fkd.bounds.dual.widen``. The MIP gap tolerances need
  no margin because the dual bound, not the incumbent, is returned;
- an infeasible program raises ``InfeasibleProgram``: the ball is never empty, so an earlier
  bound the program was built from must be wrong.

A failed solve has bound +inf and status ``failed``: the caller keeps the previous stage's bound
(CROWN or interval) and records the status.

``auto`` uses Gurobi and falls back to HiGHS, with one ``warnings.warn`` notice, when gurobipy is
missing, has no licence, or the model exceeds the size-limited pip licence (2000 variables, 2000
constraints: Gurobi raises error 10010 only at optimize()).
"""
from __future__ import annotations

import enum
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .dual import safe_lp_bound, widen

if TYPE_CHECKING:
    from .milp import Program

#: Gurobi error codes that mean "this Gurobi cannot solve it" (size limit, no licence, expired).
_GUROBI_LICENCE_ERRORS = {10009, 10010}


class Solver(str, enum.Enum):
    AUTO = "auto"
    GUROBI = "gurobi"
    HIGHS = "highs"


class Status(str, enum.Enum):
    OPTIMAL = "optimal"
    TIME_LIMIT = "time_limit"
    FAILED = "failed"


@dataclass(frozen=True)
class SolveResult:
    """One maximisation. ``bound``: sound upper bound on the maximum (margin included; +inf if
    none); ``incumbent``: best feasible value found (no soundness role, for diagnostics)."""
    bound: float
    status: Status
    seconds: float
    solver: str
    incumbent: float | None = None


class SolverUnavailable(RuntimeError):
    """The requested backend cannot solve this program (not installed, no licence, too large)."""


class InfeasibleProgram(RuntimeError):
    """A solver proved a program infeasible: an input bound or earlier per-neuron bound it was built
    from excludes a real point of the ball. A bug by definition; never kept as a bound."""


class Session(Protocol):
    solver: str

    def maximize(self, cost: np.ndarray, const: float, time_limit: float) -> SolveResult: ...

    def solution(self) -> np.ndarray | None:
        """The best feasible point (n,) of the last maximisation, None if there is none (a
        witness to check, e.g. by a forward pass; never a bound)."""


def _infeasible(solver: str) -> InfeasibleProgram:
    return InfeasibleProgram(f"{solver} proved a bounding program infeasible: a bound it was built from excludes "
                             f"part of the ball, so that bound is wrong. This is a bug; please report it.")


def _result(dual: float | None, status: Status, t0: float, solver: str, const: float,
            incumbent: float | None) -> SolveResult:
    if dual is None or not np.isfinite(dual):
        bound, status = float("inf"), (status if status is Status.TIME_LIMIT else Status.FAILED)
    else:
        bound = widen(float(dual) + const)
    inc = None if incumbent is None or not np.isfinite(incumbent) else float(incumbent) + const
    return SolveResult(bound, status, time.perf_counter() - t0, solver, inc)


class GurobiSession:
    """A gurobipy model of ``program``; raises ``SolverUnavailable`` on licence errors."""
    solver = "gurobi"

    def __init__(self, program: "Program"):
        try:
            import gurobipy as gp
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise SolverUnavailable("gurobipy is not installed") from e
        self._gp, self.program, self._groups = gp, program, []
        try:
            self.env = gp.Env(empty=True)
            self.env.setParam("OutputFlag", 0)
            self.env.setParam("Threads", 1)
            self.env.start()
            m = gp.Model(env=self.env)
            vtype = np.where(program.integer_vars(), gp.GRB.BINARY, gp.GRB.CONTINUOUS)
            self.x = m.addMVar(program.n, lb=program.lb, ub=program.ub, vtype=vtype)
            a = program.a.tocsr()
            eq = program.row_lo == program.row_hi
            le = ~eq & np.isfinite(program.row_hi)  # a ranged row (both sides finite) is in both groups
            ge = ~eq & np.isfinite(program.row_lo)
            for mask, sense, rhs in ((eq, "=", program.row_lo), (le, "<", program.row_hi), (ge, ">", program.row_lo)):
                if mask.any():
                    self._groups.append((mask, m.addMConstr(a[mask], self.x, sense, rhs[mask])))
            self.model = m
        except gp.GurobiError as e:
            raise SolverUnavailable(f"Gurobi error {e.errno}: {e}") from e

    def maximize(self, cost: np.ndarray, const: float, time_limit: float) -> SolveResult:
        gp, m = self._gp, self.model
        t0 = time.perf_counter()
        m.setObjective(cost @ self.x, gp.GRB.MAXIMIZE)
        m.Params.TimeLimit = max(float(time_limit), 1e-3)
        try:
            m.optimize()
        except gp.GurobiError as e:
            if e.errno in _GUROBI_LICENCE_ERRORS:
                raise SolverUnavailable(f"Gurobi error {e.errno}: {e}") from e
            return _result(None, Status.FAILED, t0, self.solver, const, None)
        if m.Status in (gp.GRB.INFEASIBLE, gp.GRB.INF_OR_UNBD):
            raise _infeasible(self.solver)
        status = {gp.GRB.OPTIMAL: Status.OPTIMAL, gp.GRB.TIME_LIMIT: Status.TIME_LIMIT}.get(m.Status, Status.FAILED)
        inc = m.ObjVal if m.SolCount > 0 else None
        if m.IsMIP:
            dual = m.ObjBound if status is not Status.FAILED else None
        elif status is Status.OPTIMAL:
            y = np.zeros(self.program.m)
            for mask, constr in self._groups:
                y[mask] += constr.Pi
            dual = safe_lp_bound(self.program, cost, y)
        else:
            dual = None
        return _result(dual, status, t0, self.solver, const, inc)

    def solution(self) -> np.ndarray | None:
        return np.array(self.x.X, dtype=float) if self.model.SolCount > 0 else None


class HighsSession:
    """A highspy model of ``program`` (no size limit)."""
    solver = "highs"

    def __init__(self, program: "Program"):
        import highspy
        self._hs = highspy
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        a = program.a.tocsc()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = program.n, a.shape[0]
        lp.col_cost_ = np.zeros(program.n)
        lp.col_lower_, lp.col_upper_ = program.lb.astype(float), program.ub.astype(float)
        lp.row_lower_, lp.row_upper_ = program.row_lo.astype(float), program.row_hi.astype(float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data.astype(float)
        self.is_mip = bool(program.integer_vars().any())
        if self.is_mip:
            lp.integrality_ = [highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous
                               for b in program.integer_vars()]
        lp.sense_ = highspy.ObjSense.kMaximize
        h.passModel(lp)
        self.h, self.n, self.program = h, program.n, program

    def maximize(self, cost: np.ndarray, const: float, time_limit: float) -> SolveResult:
        hs, h = self._hs, self.h
        t0 = time.perf_counter()
        h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), np.asarray(cost, dtype=float))
        h.setOptionValue("time_limit", max(float(time_limit), 1e-3))
        if self.is_mip:
            h.clearSolver()  # no stale incumbent from the previous objective; LPs keep their basis (warm start)
        h.run()
        st = h.getModelStatus()
        if st in (hs.HighsModelStatus.kInfeasible, hs.HighsModelStatus.kUnboundedOrInfeasible):
            raise _infeasible(self.solver)
        status = {hs.HighsModelStatus.kOptimal: Status.OPTIMAL,
                  hs.HighsModelStatus.kTimeLimit: Status.TIME_LIMIT}.get(st, Status.FAILED)
        info = h.getInfo()
        if self.is_mip:
            dual = info.mip_dual_bound if status is not Status.FAILED else None
            inc = info.objective_function_value if info.primal_solution_status == 2 else None
        else:
            inc = info.objective_function_value if status is Status.OPTIMAL else None
            sol = h.getSolution()
            dual = (safe_lp_bound(self.program, cost, np.asarray(sol.row_dual, dtype=float))
                    if status is Status.OPTIMAL and sol.dual_valid else None)
        return _result(dual, status, t0, self.solver, const, inc)

    def solution(self) -> np.ndarray | None:
        if self.h.getInfo().primal_solution_status != 2:
            return None
        return np.array(self.h.getSolution().col_value, dtype=float)


class AutoSession:
    """Gurobi, falling back to HiGHS (one notice) when Gurobi cannot solve this program."""

    def __init__(self, program: "Program"):
        self.program = program
        self.inner: Session | None = None
        try:
            self.inner = GurobiSession(program)
        except SolverUnavailable as e:
            self._fall_back(str(e))

    @property
    def solver(self) -> str:
        return self.inner.solver if self.inner is not None else "highs"

    def _fall_back(self, reason: str) -> None:
        warnings.warn(f"Gurobi cannot solve this model, falling back to HiGHS ({reason.splitlines()[0]})",
                      RuntimeWarning, stacklevel=3)
        self.inner = HighsSession(self.program)

    def maximize(self, cost: np.ndarray, const: float, time_limit: float) -> SolveResult:
        try:
            return self.inner.maximize(cost, const, time_limit)
        except SolverUnavailable as e:
            self._fall_back(str(e))
            return self.inner.maximize(cost, const, time_limit)

    def solution(self) -> np.ndarray | None:
        return self.inner.solution()


@lru_cache(maxsize=1)
def solver_licences() -> dict[str, str]:
    """The solvers this machine has, for run records, probed once per process (copy before changing
    it): Gurobi's version and licence (probed by optimising an empty 2001-variable model, which a
    size-limited licence refuses with error 10010) and HiGHS's version (MIT licence, no limit)."""
    import importlib.metadata

    out = {}
    try:
        import gurobipy as gp
    except ImportError:
        out["gurobi"] = "not installed"
    else:
        version = importlib.metadata.version("gurobipy")
        try:
            with gp.Env(empty=True) as env:
                env.setParam("OutputFlag", 0)
                env.start()
                with gp.Model(env=env) as m:
                    m.addVars(2001)
                    m.optimize()
            out["gurobi"] = f"gurobipy {version}, unrestricted licence"
        except gp.GurobiError as e:
            out["gurobi"] = (f"gurobipy {version}, size-limited licence (2000 variables, 2000 constraints)"
                             if e.errno == 10010 else f"gurobipy {version}, unusable: error {e.errno}: {e}")
    try:
        out["highs"] = f"highspy {importlib.metadata.version('highspy')}, MIT licence"
    except importlib.metadata.PackageNotFoundError:
        out["highs"] = "not installed"
    return out


def open_session(program: "Program", solver: Solver | str = Solver.AUTO) -> Session:
    """A backend session for ``program``.

    Args:
        solver: ``auto`` (Gurobi, else HiGHS with a notice), ``gurobi`` (``SolverUnavailable`` at
            the first solve it cannot do) or ``highs``.
    """
    from ..config import parse

    solver = parse(Solver, solver)
    if solver is Solver.HIGHS:
        return HighsSession(program)
    if solver is Solver.GUROBI:
        return GurobiSession(program)
    return AutoSession(program)
