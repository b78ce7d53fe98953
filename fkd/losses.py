"""The method registry: name -> pure loss of logits, and the inner maximisation it needs.

Losses follow spec.md (eqs. 1, 4, 5 and 12). "KL(p_s, p_t)" in the paper is the distillation KL
with the teacher as target, implemented as the batch mean of KL(teacher || student); T^2 scales
the KL term where the paper has a temperature (SD, ARD, FD; RSLAD is at T = 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from .attacks import CrossEntropy, KLDivergence, Objective
from .config import Method, parse

AttackKind = Literal["none", "ce", "kl_clean_teacher", "kl_same_point"]


class Logits(NamedTuple):
    """The logits a loss may read, each (B, K); None where the method does not need them."""
    student_clean: Tensor | None = None
    student_adv: Tensor | None = None
    teacher_clean: Tensor | None = None
    teacher_adv: Tensor | None = None


def kl(teacher_logits: Tensor, student_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Batch-mean KL(softmax(t/T) || softmax(s/T)): (B, K), (B, K) -> scalar."""
    return F.kl_div(F.log_softmax(student_logits / temperature, -1),
                    F.log_softmax(teacher_logits / temperature, -1),
                    reduction="batchmean", log_target=True)


def rt_loss(z: Logits, y: Tensor, alpha: float | None, T: float | None) -> Tensor:
    """Madry adversarial training: CE(f(x + d), y) with d maximising the CE."""
    return F.cross_entropy(z.student_adv, y)


def sd_loss(z: Logits, y: Tensor, alpha: float, T: float) -> Tensor:
    """Eq. 1: a T^2 KL(f_t(x;T) || f_s(x;T)) + (1 - a) CE(f_s(x), y)."""
    return alpha * T * T * kl(z.teacher_clean, z.student_clean, T) + (1 - alpha) * F.cross_entropy(z.student_clean, y)


def ard_loss(z: Logits, y: Tensor, alpha: float, T: float) -> Tensor:
    """Eq. 4: a T^2 KL(f_t(x;T) || f_s(x+d;T)) + (1 - a) CE(f_s(x), y), d maximising CE(f_s(x+d), y)."""
    return alpha * T * T * kl(z.teacher_clean, z.student_adv, T) + (1 - alpha) * F.cross_entropy(z.student_clean, y)


def rslad_loss(z: Logits, y: Tensor, alpha: float, T: float | None) -> Tensor:
    """Eq. 5 (T = 1): a KL(f_t(x) || f_s(x+d)) + (1 - a) KL(f_t(x) || f_s(x)), d maximising the first KL."""
    return alpha * kl(z.teacher_clean, z.student_adv) + (1 - alpha) * kl(z.teacher_clean, z.student_clean)


def fd_loss(z: Logits, y: Tensor, alpha: float, T: float) -> Tensor:
    """Eq. 12: a T^2 KL(f_t(x+d;T) || f_s(x+d;T)) + (1 - a) CE(f_s(x), y), d maximising KL at x+d."""
    return alpha * T * T * kl(z.teacher_adv, z.student_adv, T) + (1 - alpha) * F.cross_entropy(z.student_clean, y)


@dataclass(frozen=True)
class MethodSpec:
    """One registry entry: the loss, the logits it reads and the inner maximisation it needs."""
    method: Method
    loss: Callable[[Logits, Tensor, float | None, float | None], Tensor]
    attack: AttackKind
    needs: frozenset[str]
    equation: str

    def objective(self, student: nn.Module, teacher: nn.Module | None, y: Tensor,
                  teacher_clean: Tensor | None) -> Objective | None:
        """The PGD objective of the inner maximisation (at T = 1), or None if there is none."""
        if self.attack == "ce":
            return CrossEntropy(student, y)
        if self.attack == "kl_clean_teacher":
            return KLDivergence(student, teacher, teacher_logits=teacher_clean)
        if self.attack == "kl_same_point":
            return KLDivergence(student, teacher)
        return None


_S, _SA, _T, _TA = "student_clean", "student_adv", "teacher_clean", "teacher_adv"
REGISTRY: dict[Method, MethodSpec] = {
    Method.RT: MethodSpec(Method.RT, rt_loss, "ce", frozenset({_SA}), "Madry et al. (2018)"),
    Method.SD: MethodSpec(Method.SD, sd_loss, "none", frozenset({_S, _T}), "eq. 1"),
    Method.ARD: MethodSpec(Method.ARD, ard_loss, "ce", frozenset({_S, _SA, _T}), "eq. 4"),
    Method.RSLAD: MethodSpec(Method.RSLAD, rslad_loss, "kl_clean_teacher", frozenset({_S, _SA, _T}), "eq. 5"),
    Method.FD: MethodSpec(Method.FD, fd_loss, "kl_same_point", frozenset({_S, _SA, _TA}), "eq. 12"),
}


def get_method(name: Method | str) -> MethodSpec:
    """The registry entry of ``name``; ValueError listing the options if it is unknown."""
    return REGISTRY[parse(Method, name)]
