"""Time budgets of the certifier, in this process's CPU seconds.

Every budgeted loop of the certifier (``obbt``'s MILPs, the refinement of the deciding pairs, the
softmax and joint softmax stages, branch and bound, the global MINLP) stops when its ``Budget`` is
spent. A budget counts ``time.process_time()``: the CPU seconds of this process, all its threads.
The solvers (Gurobi, HiGHS) run in-process with one thread, so their work is counted, while time
spent waiting for a core on a loaded machine is not: the same budget does about the same work, and
gives about the same bound, on an idle machine and on a busy one (a wall-clock budget gave FAITHUB /
EMPLB 3.67 unloaded and 3.84 at load 5 on one configuration). With several torch threads, CPU
seconds run faster than wall seconds, so the same budget does less work there.

The per-solve limits handed to Gurobi and HiGHS stay wall-clock seconds: the solvers know no other
clock. ``Budget.limit`` gives min(per-solve limit, CPU seconds left); a solve that waits for a core
spends less CPU than its wall limit, so it never overspends the budget. Reported ``seconds`` of
results stay wall time unless a field says otherwise.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

__all__ = ["Budget", "MIN_SOLVE", "as_budget", "cpu_seconds"]

#: Seconds below which a solve is not started: its limit is too short to return anything useful.
MIN_SOLVE = 0.01


def cpu_seconds() -> float:
    """This process's CPU seconds so far (all threads), the clock of every ``Budget``."""
    return time.process_time()


@dataclass
class Budget:
    """A budget of CPU seconds, started when made.

    Args:
        seconds: the CPU seconds allowed (None: no limit).
    """
    seconds: float | None = None
    started: float = field(default_factory=cpu_seconds)

    def spent(self) -> float:
        """Returns: CPU seconds spent since the budget started."""
        return cpu_seconds() - self.started

    def left(self) -> float:
        """Returns: CPU seconds left, never below 0 (inf without a limit)."""
        return math.inf if self.seconds is None else max(self.seconds - self.spent(), 0.0)

    def expired(self) -> bool:
        """Returns: whether more than ``seconds`` have been spent (never without a limit)."""
        return self.seconds is not None and self.spent() > self.seconds

    def limit(self, per_solve: float) -> float:
        """The time limit of the next solve.

        Args:
            per_solve: the solver's own limit, wall seconds.
        Returns:
            min(per_solve, CPU seconds left); a caller starts no solve at or below ``MIN_SOLVE``.
        """
        return min(float(per_solve), self.left())


def as_budget(budget: Budget | float | None) -> Budget:
    """A budget from a caller's argument.

    Args:
        budget: a running ``Budget`` (shared: returned as is), or seconds to start one now, or None.
    Returns:
        the ``Budget``.
    """
    return budget if isinstance(budget, Budget) else Budget(None if budget is None else float(budget))
