"""Sound bounds from a solver's answer: the LP bound from any dual vector, and the safety margin.

- An LP's bound is computed by us from the solver's dual vector y, not the solver's objective
  value (``dual_bound``, Neumaier and Shcherbina 2004): for *any* y, max c^T v over the program is
  at most sum_j max(y_j lo_j, y_j hi_j) over the rows plus sum_i max(r_i lb_i, r_i ub_i) over the
  variable box, r = c - A^T y, so the bound holds whatever the solver's feasibility and optimality
  tolerances; it is taken for y and -y (either sign convention) and the smaller kept
  (``safe_lp_bound``).
- Every bound read from a solver is widened by ``SOLVER_ABS_TOL + SOLVER_REL_TOL * |bound|``
  (``widen``): for the LP bound it covers the float64 rounding of the sums above, for a MILP's
  dual bound the solver's tolerances.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .milp import Program

#: Absolute and relative widening of every bound read from a solver (see the module docstring).
SOLVER_ABS_TOL = 1e-5
SOLVER_REL_TOL = 1e-6


def dual_bound(program: "Program", cost: np.ndarray, y: np.ndarray) -> float:
    """A sound upper bound on max cost @ v over ``program``'s LP relaxation from any row multipliers
    y (m,) (Neumaier and Shcherbina 2004): cost @ v = y @ (a v) + r @ v with r = cost - a^T y, and
    y_j (a v)_j <= max(y_j lo_j, y_j hi_j), r_i v_i <= max(r_i lb_i, r_i ub_i). A multiplier whose
    needed row side is infinite is set to 0. Holds for every y; tight for the optimal dual.

    Returns:
        The bound (float64; +inf if a variable with r_i != 0 has an infinite bound).
    """
    y = np.asarray(y, dtype=float).copy()
    lo, hi = program.row_lo, program.row_hi
    y[(y > 0) & ~np.isfinite(hi)] = 0.0
    y[(y < 0) & ~np.isfinite(lo)] = 0.0
    rows = np.where(y > 0, y * np.where(np.isfinite(hi), hi, 0.0), y * np.where(np.isfinite(lo), lo, 0.0)).sum()
    r = np.asarray(cost, dtype=float) - program.a.T @ y
    with np.errstate(invalid="ignore"):  # 0 * inf: a variable the bound does not use
        box = np.where(r == 0, 0.0, np.maximum(r * program.lb, r * program.ub))
    return float(rows + box.sum())


def safe_lp_bound(program: "Program", cost: np.ndarray, y: np.ndarray) -> float:
    """``dual_bound`` for y and for -y (whichever sign convention the solver reports), the smaller."""
    return min(dual_bound(program, cost, y), dual_bound(program, cost, -np.asarray(y, dtype=float)))


def widen(value: float) -> float:
    """The solver bound ``value`` widened upward by the documented safety margin."""
    return value + SOLVER_ABS_TOL + SOLVER_REL_TOL * abs(value)
