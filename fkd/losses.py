"""The method registry: name -> pure loss of logits, and the inner maximisation it needs.

Losses follow spec.md (eqs. 1, 4, 5 and 12); the related methods (KDIGA, TFKD, FDBOTH; not in the paper) are
KDIGA (Shao et al. 2021: SD's loss plus the alignment of the input gradients of the CE of student
and teacher), adversarial teacher-free distillation TFKD (a manually designed virtual teacher,
Yuan et al. 2019, in the adversarial variant of the notes) and FDBOTH (FD's loss with a KL instead
of the CE at the clean point). "KL(p_s, p_t)" in the paper is the distillation KL
with the teacher as target, implemented as the batch mean of KL(teacher || student); T^2 scales
the KL term where the paper has a temperature (SD, ARD, FD; RSLAD is at T = 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attacks import CrossEntropy, KLDivergence, Objective
from .config import Method, hparams, model_name, parse

AttackKind = Literal["none", "ce", "kl_clean_teacher", "kl_same_point"]


class Logits(NamedTuple):
    """What a loss may read: logits (B, K), and for KDIGA the input gradients (B, C, H, W) of each
    network's per-image CE at the clean point (the student's built with ``create_graph=True``, so
    a loss of it back-propagates into the student's parameters: a double backward pass). None
    where the method does not need them."""
    student_clean: Tensor | None = None
    student_adv: Tensor | None = None
    teacher_clean: Tensor | None = None
    teacher_adv: Tensor | None = None
    student_grad: Tensor | None = None
    teacher_grad: Tensor | None = None


def input_gradient(model: nn.Module, x: Tensor, y: Tensor, *, create_graph: bool) -> tuple[Tensor, Tensor]:
    """Logits and the input gradient of the summed per-image CE: (B, ...) -> ((B, K), (B, ...)).

    Args:
        create_graph: keep the graph of the gradient (the student's, for the double backward pass);
            False detaches both outputs (the frozen teacher's).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        z = model(x)
        g, = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), x, create_graph=create_graph)
    return (z, g) if create_graph else (z.detach(), g.detach())


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


def gradient_alignment(student_grad: Tensor, teacher_grad: Tensor) -> Tensor:
    """KDIGA's term: batch mean of ||g_s - g_t||_2 over each image's input gradient: (B, ...) x2 -> scalar.

    The norm is sqrt(sum of squares + 1e-12) - 1e-6: exactly 0 (with a zero, not NaN, gradient)
    where the gradients agree.
    """
    sq = (student_grad - teacher_grad).flatten(1).pow(2).sum(1)
    return ((sq + 1e-12).sqrt() - 1e-6).mean()


def kdiga_loss(z: Logits, y: Tensor, alpha: float, T: float, *, iga_weight: float) -> Tensor:
    """KDIGA: a T^2 KL(f_t(x;T) || f_s(x;T)) + (1 - a) CE(f_s(x), y) + w ||grad_x CE_s - grad_x CE_t||_2."""
    return sd_loss(z, y, alpha, T) + iga_weight * gradient_alignment(z.student_grad, z.teacher_grad)


def virtual_teacher(y: Tensor, num_classes: int, true_prob: float) -> Tensor:
    """The manually designed virtual teacher p^d (Yuan et al. 2019): (B,) -> (B, K), a on the true
    class and (1 - a) / (K - 1) elsewhere; used as logits, so softmax(p^d / T) is its distribution."""
    p = torch.full((y.shape[0], num_classes), (1 - true_prob) / (num_classes - 1), dtype=torch.float32,
                   device=y.device)
    return p.scatter(1, y.view(-1, 1), true_prob)


def tfkd_loss(z: Logits, y: Tensor, alpha: float, T: float, *, true_prob: float) -> Tensor:
    """Adversarial TFKD: (1 - a) CE(f_s(x'), y) + a T^2 KL(softmax(p^d/T) || f_s(x';T)), x' maximising
    CE(f_s(x'), y); no teacher network."""
    s = z.student_adv
    pd = virtual_teacher(y, s.shape[-1], true_prob).to(s.dtype)
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * kl(pd, s, T)


def fdboth_loss(z: Logits, y: Tensor, alpha: float, T: float) -> Tensor:
    """FD with KL at both points: a T^2 KL(f_t(x+d;T) || f_s(x+d;T)) + (1 - a) T^2 KL(f_t(x;T) || f_s(x;T)),
    d maximising the KL at x+d (eq. 12 has CE(f_s(x), y) as its second term)."""
    return alpha * T * T * kl(z.teacher_adv, z.student_adv, T) + (1 - alpha) * T * T * kl(z.teacher_clean, z.student_clean, T)


@dataclass(frozen=True)
class MethodSpec:
    """One row of the method table: the loss, the logits it reads, the inner maximisation it needs,
    and whether the paper has the method (the related methods are ours to add)."""
    method: Method
    loss: Callable[[Logits, Tensor, float | None, float | None], Tensor]
    attack: AttackKind
    needs: frozenset[str]
    equation: str
    params: tuple[str, ...] = ()  # TrainConfig fields passed to the loss by keyword (fkd.config.RELATED_PARAMS)
    paper: bool = True

    @property
    def adversarial(self) -> bool:
        """Whether training runs an inner maximisation (an attack) per batch."""
        return self.attack != "none"

    def zoo_name(self, dataset) -> str:
        """The zoo name of this method at the paper's (or our) alpha on ``dataset``: ``rt``, ``fd-a0.5``."""
        return model_name(self.method, hparams(dataset, self.method)[4])

    @property
    def uses_teacher(self) -> bool:
        """Whether the loss reads a teacher network (False for rt and the teacher-free tfkd)."""
        return any(n.startswith("teacher") for n in self.needs)

    def loss_of(self, z: Logits, y: Tensor, cfg) -> Tensor:
        """The loss with a TrainConfig's alpha, T and method parameters."""
        return self.loss(z, y, cfg.alpha, cfg.temperature, **{p: getattr(cfg, p) for p in self.params})

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
_SG, _TG = "student_grad", "teacher_grad"
REGISTRY: dict[Method, MethodSpec] = {
    Method.RT: MethodSpec(Method.RT, rt_loss, "ce", frozenset({_SA}), "Madry et al. (2018)"),
    Method.SD: MethodSpec(Method.SD, sd_loss, "none", frozenset({_S, _T}), "eq. 1"),
    Method.ARD: MethodSpec(Method.ARD, ard_loss, "ce", frozenset({_S, _SA, _T}), "eq. 4"),
    Method.RSLAD: MethodSpec(Method.RSLAD, rslad_loss, "kl_clean_teacher", frozenset({_S, _SA, _T}), "eq. 5"),
    Method.FD: MethodSpec(Method.FD, fd_loss, "kl_same_point", frozenset({_S, _SA, _TA}), "eq. 12"),
    Method.KDIGA: MethodSpec(Method.KDIGA, kdiga_loss, "none", frozenset({_S, _T, _SG, _TG}),
                             "KDIGA, Shao et al. (2021)", ("iga_weight",), paper=False),
    Method.TFKD: MethodSpec(Method.TFKD, tfkd_loss, "ce", frozenset({_SA}),
                            "adversarial Tf-KD_reg (Yuan et al. 2019; notes)", ("true_prob",), paper=False),
    Method.FDBOTH: MethodSpec(Method.FDBOTH, fdboth_loss, "kl_same_point", frozenset({_S, _SA, _T, _TA}),
                              "eq. 12 with KL at the clean point", paper=False),
}
#: the students of the paper's tables and those of the related methods, as zoo names at each
#: dataset's alpha (``sd`` reads ``sd-a0.5`` on MNIST); the one place either list is written down
PAPER_STUDENTS = tuple(m.value for m, spec in REGISTRY.items() if spec.paper and m is not Method.RT)
RELATED_STUDENTS = tuple(m.value for m, spec in REGISTRY.items() if not spec.paper)


def get_method(name: Method | str) -> MethodSpec:
    """The registry entry of ``name``; ValueError listing the options if it is unknown."""
    return REGISTRY[parse(Method, name)]
