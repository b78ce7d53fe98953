"""Certified bounds over B_eps(x0) = l-inf ball intersected with [0, 1] (section 4.2).

Entry points (auto_LiRPA-shaped):

- ``bounds(net, x0, eps, method=...)`` -> (lower, upper) logit bounds, (K,) or (B, K);
- ``logit_diff_bounds(net, x0, eps, mode=...)`` -> bounds on d_ij = z_j - z_i (eq. 9), (K, K);
- ``softmax_bounds(d_lower, d_upper)`` -> bounds on softmax (eq. 10);
- ``faithub(teacher, student, x0, eps, ...)`` -> FAITHUB (eq. 11), an upper bound on delta*.

Methods, loosest to tightest (each result is intersected with the previous stage, so they nest):
``interval`` (IBP) -> ``crown`` (back-substitution) -> ``lp`` (triangle LP per logit after
progressive LP tightening) -> ``milp`` (exact big-M MILP per logit). Every returned bound is
widened outward per logit by ``fp.logit_margin`` (the rigorous float32 forward error of the network
over the input box, at least ``FP_MARGIN``; a difference z_j - z_i by both logits' margins); solver
bounds also carry the solver margin of ``dual.SOLVER_ABS_TOL``.
"""
from .delta import Faithub, faithub
from .interval import Box
from .logits import BoundReport, as_net, bounds, logit_diff_bounds, output_bounds
from .modes import BoundMethod, DiffMode, Tightening
from .network import FP_MARGIN, check_net, check_one_image, check_pair, lower
from .refine import DiffBounds, RefineStats, faithub_refined
from .sigma import diff_bounds_from_logits, faithub_from_sigma, softmax_bounds
from .solvers import SolveResult, Solver, SolverUnavailable, Status

__all__ = ["Box", "BoundMethod", "DiffMode", "Tightening", "Solver", "Status", "BoundReport", "Faithub", "FP_MARGIN",
           "as_net", "bounds", "output_bounds", "logit_diff_bounds", "softmax_bounds", "faithub",
           "diff_bounds_from_logits", "faithub_from_sigma",
           "SolverUnavailable", "SolveResult", "lower", "DiffBounds", "RefineStats", "faithub_refined", "check_net",
           "check_pair", "check_one_image"]
