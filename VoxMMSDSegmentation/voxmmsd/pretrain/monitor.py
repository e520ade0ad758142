"""Is the self-distillation learning? Per-step diagnostics and a collapse check.

:func:`distillation_diagnostics` summarises one step's head outputs (pure function);
:class:`CollapseMonitor` watches them over a run and says when the teacher has
collapsed. Two collapses are possible (Caron et al., DINO, 2021, section 5.3):

- *uniform*: the teacher's distribution is flat, its entropy ~ ln K, and the loss sits at
  ln K with no signal (what centring alone produces);
- *one-hot*: every voxel maps to the same prototype, the teacher's entropy ~ 0 and the
  voxel outputs all point the same way (what sharpening alone produces).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Deque, Dict, Optional

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from voxmmsd.pretrain.config import PretrainConfig

DIAGNOSTICS = ("teacher_entropy", "student_entropy", "kl", "voxel_cosine", "center_norm")


def _entropy(log_p: torch.Tensor) -> torch.Tensor:
    return -(log_p.exp() * log_p).sum(-1)


def mean_pairwise_cosine(x: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over all pairs i != j of the rows of ``x`` (n, d); 1 when n < 2.

    From the sum of the unit rows u: sum_{i != j} u_i . u_j = |sum u|^2 - n (O(n d)).
    """
    n = x.shape[0]
    if n < 2:
        return x.new_ones(())
    u = F.normalize(x.float(), dim=-1)
    s = u.sum(0)
    return ((s * s).sum() - n) / (n * (n - 1))


@torch.no_grad()
def distillation_diagnostics(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor,
                             student_temp: float, teacher_temp: float) -> Dict[str, float]:
    """Health of one step: ``student``, ``teacher`` ``(2, n, K)`` head outputs as in the loss; ``center`` (1, K).

    ``teacher_entropy`` / ``student_entropy``: mean entropy (nats) of the teacher's centred,
    sharpened softmax and the student's softmax (ln K when flat, 0 when one-hot);
    ``kl``: mean KL(teacher of one view || student of the other), the part of the loss the
    student can still reduce; ``voxel_cosine``: mean cosine between the student's output
    vectors of different voxels (~1: all voxels the same); ``center_norm``: |center|.
    NaN for the first four when there are no pairs.
    """
    k = student.shape[-1]
    if student.shape[1] == 0:
        nan = float("nan")
        return {"teacher_entropy": nan, "student_entropy": nan, "kl": nan, "voxel_cosine": nan,
                "center_norm": float(center.float().norm())}
    log_t = F.log_softmax((teacher.float() - center.float()) / teacher_temp, dim=-1)
    log_s = F.log_softmax(student.float() / student_temp, dim=-1)
    t_ent = _entropy(log_t)
    # KL(t_other || s) = sum t_other * (log t_other - log s), student view v against teacher view 1 - v
    kl = (log_t.flip(0).exp() * (log_t.flip(0) - log_s)).sum(-1)
    return {
        "teacher_entropy": float(t_ent.mean()),
        "student_entropy": float(_entropy(log_s).mean()),
        "kl": float(kl.mean()),
        "voxel_cosine": float(mean_pairwise_cosine(student.reshape(-1, k))),
        "center_norm": float(center.float().norm()),
    }


class CollapseMonitor:
    """Feed it each logged step's diagnostics; it returns a warning message when the teacher has collapsed.

    After ``warmup`` iterations, the mean teacher entropy over the last ``window`` logged
    steps is compared with ln K: within ``tolerance`` (1%) of ln K is a uniform collapse;
    below ``tolerance * ln K`` with voxel outputs all alike (mean cosine > 0.99) is a
    one-hot collapse. A warning is given once per collapse; the monitor re-arms when the
    entropy has left the collapsed range.
    """

    def __init__(self, out_dim: int, warmup: int, window: int = 5, tolerance: float = 0.01) -> None:
        self.ln_k = math.log(out_dim)
        self.warmup, self.tolerance = int(warmup), float(tolerance)
        self.window = max(int(window), 1)
        self.recent: Deque[Dict[str, float]] = deque(maxlen=self.window)
        self.warned: Optional[str] = None

    def state(self, entropy: float, cosine: float) -> Optional[str]:
        """``"uniform"``, ``"one-hot"`` or None for a (mean) teacher entropy and voxel cosine."""
        if not math.isfinite(entropy):
            return None
        if entropy >= (1.0 - self.tolerance) * self.ln_k:
            return "uniform"
        if entropy <= self.tolerance * self.ln_k and cosine > 0.99:
            return "one-hot"
        return None

    def update(self, iteration: int, diagnostics: Dict[str, float]) -> Optional[str]:
        self.recent.append(diagnostics)
        if iteration < self.warmup or len(self.recent) < self.window:
            return None
        ent = sum(d["teacher_entropy"] for d in self.recent) / len(self.recent)
        cos = sum(d["voxel_cosine"] for d in self.recent) / len(self.recent)
        kind = self.state(ent, cos)
        if kind is None or kind == self.warned:
            self.warned = kind
            return None
        self.warned = kind
        if kind == "uniform":
            return (f"Self-distillation has collapsed at iteration {iteration}: the teacher's output is uniform "
                    f"(entropy {ent:.3f}, ln K = {self.ln_k:.3f}) and the distillation loss gives no learning "
                    f"signal. Check the head and temperatures (method.head=dino, method.teacher_bn=batch, a "
                    f"lower method.teacher_temp) "
                    f"- see docs/pretraining.md.")
        return (f"Self-distillation has collapsed at iteration {iteration}: every voxel maps to the same output "
                f"(teacher entropy {ent:.3f}, mean voxel cosine {cos:.3f}). Raise method.teacher_temp or "
                f"method.center_momentum's effect (a lower method.center_momentum) - see docs/pretraining.md.")

    @classmethod
    def for_run(cls, cfg: "PretrainConfig") -> "CollapseMonitor":
        """Warm-up = the longer of the learning-rate and teacher-temperature warm-ups."""
        warmup = int(round(max(cfg.train.lr_warmup, cfg.method.teacher_temp_warmup) * cfg.train.iterations))
        return cls(cfg.method.out_dim, warmup)
