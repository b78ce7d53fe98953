"""The choices of a bound computation: its method, its FAITHUB mode and its tightening."""
from __future__ import annotations

import enum


class BoundMethod(str, enum.Enum):
    """How bounds are computed, loosest to tightest (each stage nests in the previous one)."""
    INTERVAL = "interval"
    CROWN = "crown"
    LP = "lp"
    MILP = "milp"


class DiffMode(str, enum.Enum):
    """How the logit differences d_ij = z_j - z_i of eq. 9 are bounded."""
    PAPER = "paper"  # eq. 9 from logit intervals: d_ij in [l_j - u_i, u_j - l_i]
    TIGHT = "tight"  # bound z_j - z_i directly, intersected with the paper bounds
    JOINT = "joint"  # tight, plus teacher and student at one shared x (fkd.bounds.joint); FAITHUB only
    SOFTMAX = "softmax"  # tight, then each network's softmax inside its LP/MILP (fkd.bounds.softmax); FAITHUB only
    JOINT_SOFTMAX = "joint_softmax"  # softmax, then both networks' softmax at one x (fkd.bounds.joint_softmax)


PAIR_MODES = (DiffMode.JOINT, DiffMode.SOFTMAX, DiffMode.JOINT_SOFTMAX)  # FAITHUB of a pair only, built on tight


class Tightening(str, enum.Enum):
    """Progressive per-layer tightening before the final stage."""
    NONE = "none"
    LP = "lp"
    MILP = "milp"
    OBBT = "obbt"  # LP, then a short MILP per still-unstable neuron on a budget (fkd.bounds.obbt)


def default_tightening(method: BoundMethod) -> Tightening:
    """The tightening a method gets when none is asked: lp for lp and milp, none otherwise."""
    # progressive LP tightening pays for itself before any solver stage (results/benchmarks/bounds_groundwork.md)
    return Tightening.LP if method in (BoundMethod.LP, BoundMethod.MILP) else Tightening.NONE
