"""Oracles for the certifier's budgets (``fkd.bounds.budget``): they count this process's CPU seconds
(sleeping or another process's work spends none, work does), and a budget of 0 does no refinement
in any budgeted loop (the bound is that of the stage it starts from)."""
from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import torch

from fkd.bounds import as_net
from fkd.bounds.budget import MIN_SOLVE, Budget, as_budget
from fkd.bounds.exact import exact_delta
from fkd.bounds.joint_softmax import joint_softmax_faithub
from fkd.bounds.milp import Relax
from fkd.bounds.refine import faithub_refined
from fkd.bounds.shared import ImageBounds
from fkd.bounds.sigma import faithub_from_sigma
from fkd.bounds.softmax import SoftmaxBounds, softmax_faithub
from test_bounds import _mlp


def test_sleeping_spends_no_budget():
    b = Budget(0.1)
    time.sleep(0.2)
    assert b.spent() < 0.05 and not b.expired() and b.left() > 0.05


def test_another_process_busy_spends_no_budget():
    b = Budget(0.1)
    busy = "import time\nt = time.time()\nwhile time.time() - t < 0.3:\n    pass\n"
    subprocess.run([sys.executable, "-c", busy], check=True)
    assert b.spent() < 0.05 and not b.expired()


def test_work_of_this_process_spends_it():
    b, wall = Budget(0.05), time.perf_counter()
    x = 0
    while b.spent() <= 0.06 and time.perf_counter() - wall < 60:
        x += 1
    assert b.expired() and b.left() == 0.0 and b.limit(10.0) == 0.0 <= MIN_SOLVE


def test_no_limit_never_expires_and_a_running_budget_is_shared():
    b = Budget(None)
    assert not b.expired() and b.left() == math.inf and b.limit(3.0) == 3.0
    assert as_budget(b) is b
    fresh = as_budget(2.0)
    assert fresh.seconds == 2.0 and fresh.limit(10.0) <= 2.0 and fresh.limit(1.0) == 1.0
    assert as_budget(None).seconds is None


def _pair(gen):
    x0 = torch.rand((1, 4, 4), generator=gen)
    teacher, student = _mlp(gen, [16, 12, 12, 4], scale=2.0), _mlp(gen, [16, 10, 4], scale=2.0)
    return x0, as_net(teacher, x0.shape), as_net(student, x0.shape), teacher, student


def test_a_budget_of_zero_refines_no_pair(pinned):
    x0, nt, ns, *_ = _pair(pinned)
    zero = ImageBounds(x0, 0.08, "milp", "highs", budget=0.0)
    full = ImageBounds(x0, 0.08, "milp", "highs")
    stopped = zero.tight(nt, ns)
    t, s = zero.diffs(nt), zero.diffs(ns)
    assert all(r.op != -1 for r in t.records + s.records)   # no pair solve, only the tightening's
    assert (t.stage == 0).all() and (s.stage == 0).all()
    assert stopped.value == float(faithub_from_sigma(t.sigma(), s.sigma()))
    refined = full.tight(nt, ns)
    assert refined.value < stopped.value - 1e-6   # refinement would have lowered it
    value, _, _, stats = faithub_refined(t, s, (Relax.LP, Relax.MILP), 10.0, budget=0.0)
    assert stats.solves == 0 and value == stopped.value and stats.cpu_seconds >= 0.0


def test_the_softmax_stages_with_a_budget_of_zero_solve_nothing(pinned):
    x0, nt, ns, *_ = _pair(pinned)
    ib = ImageBounds(x0, 0.08, "lp", "highs")
    ib.tight(nt, ns)
    t, s = (SoftmaxBounds.start(ib.diffs(n)) for n in (nt, ns))
    before = float(faithub_from_sigma(t.sigma, s.sigma))
    value, records = softmax_faithub(t, s, (Relax.LP,), 10.0, budget=0.0)
    assert records == [] and value == before
    terms = torch.stack([t.sigma.upper - s.sigma.lower, s.sigma.upper - t.sigma.lower]).numpy()
    joint, records = joint_softmax_faithub(t, s, budget=0.0)
    assert records == [] and joint == float(np.clip(terms.max(), 0.0, 1.0))
    _, records = softmax_faithub(t, s, (Relax.LP,), 10.0)
    assert records   # without a budget the same call solves


def test_branch_and_bound_with_no_time_splits_no_node(pinned):
    x0, _, _, teacher, student = _pair(pinned)
    stopped = exact_delta(teacher, student, x0, 0.1, tol=1e-6, time_limit=0.0)
    assert stopped.nodes == 0 and stopped.status == "budget"
    assert exact_delta(teacher, student, x0, 0.1, tol=1e-6, max_nodes=64, time_limit=60.0).nodes > 0
