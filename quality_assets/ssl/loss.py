"""The DINO objective: cross-entropy between the centred, sharpened teacher and the student over view
pairs (EMA centering or DINOv2's Sinkhorn-Knopp), and DINOv2's KoLeo spreading term.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from quality_assets.ssl.config import world_size


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: torch.Tensor, temp: float, n_iters: int = 3) -> torch.Tensor:
    """Balanced soft assignments of a batch to prototypes (DINOv2's alternative to EMA centering).

    Rows (samples) sum to 1, columns (prototypes) to B/K. Computed in the log domain: with sharp
    temperatures the plain exp() underflows to whole rows of zeros.
    """
    logq = teacher_logits.float() / temp
    b, k = logq.shape
    for _ in range(n_iters):
        logq = logq - torch.logsumexp(logq, dim=0, keepdim=True) - math.log(k)
        logq = logq - torch.logsumexp(logq, dim=1, keepdim=True) - math.log(b)
    return torch.exp(logq + math.log(b))


def koleo_loss(features: torch.Tensor, n_chunks: int = 2) -> torch.Tensor:
    """Kozachenko-Leonenko entropy estimator (DINOv2): -mean log distance to the nearest other sample.

    Spreads the backbone features of a batch over the sphere; computed per view so that the two views
    of one image do not count as each other's neighbours.
    """
    total = features.new_zeros((), dtype=torch.float32)
    chunks = features.float().chunk(n_chunks)
    for f in chunks:
        f = F.normalize(f, dim=-1)
        with torch.no_grad():
            sim = f @ f.t()
            sim.fill_diagonal_(-2.0)
            nn_idx = sim.argmax(dim=1)
        dist = (f - f[nn_idx]).norm(dim=-1)
        total = total - torch.log(dist + 1e-8).mean()
    return total / len(chunks)


def dino_cross_entropy(student_out: torch.Tensor, q: torch.Tensor, n_crops: int, student_temp: float) -> torch.Tensor:
    """Mean over view pairs (teacher global view i, student view v != i) of CE(q_i, softmax(s_v / T))."""
    b = student_out.shape[0] // n_crops
    log_p = F.log_softmax(student_out.float() / student_temp, dim=-1).view(n_crops, b, -1)
    q = q.view(2, b, -1)
    # Regrouped per student view: a global view is paired with the other global view's target, a
    # local view with both. One fused product instead of 2 * (n_crops - 1) separate cross-entropies.
    targets = torch.cat([q.flip(0), (q[0] + q[1]).unsqueeze(0).expand(n_crops - 2, -1, -1)])
    total = -(targets * log_p).sum(dim=-1).mean(dim=-1).sum()
    return total / (2 * (n_crops - 1))


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student over all view pairs (i != j).

    `centering="ema"` is the paper's (subtract an EMA of the teacher's mean logits, then softmax at the
    teacher temperature); `"sinkhorn"` replaces it with Sinkhorn-Knopp balancing of each batch.
    """

    def __init__(
        self, out_dim: int, n_crops: int, student_temp: float, center_momentum: float, centering: str = "ema"
    ) -> None:
        super().__init__()
        if centering not in ("ema", "sinkhorn"):
            raise ValueError(f"centering must be 'ema' or 'sinkhorn', got {centering!r}")
        self.centering = centering
        self.n_crops = n_crops
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        self._cross_entropy: Callable[..., torch.Tensor] = dino_cross_entropy

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        t_logits = teacher_out.float()
        if self.centering == "sinkhorn":
            q = sinkhorn_knopp(t_logits, teacher_temp)
        else:
            q = F.softmax((t_logits - self.center) / teacher_temp, dim=-1)
        total = self._cross_entropy(student_out, q.detach(), self.n_crops, self.student_temp)
        self._update_center(t_logits)
        return total

    def compile_cross_entropy(self) -> None:
        """Compile the cross-entropy (the largest memory-bound part: [n_crops*B, out_dim] in fp32)."""
        self._cross_entropy = torch.compile(dino_cross_entropy, dynamic=False)

    @torch.no_grad()
    def _update_center(self, teacher_logits: torch.Tensor) -> None:
        batch_center = teacher_logits.mean(dim=0, keepdim=True)
        if world_size() > 1:  # data-parallel: every worker keeps the centre of the global batch
            torch.distributed.all_reduce(batch_center)
            batch_center /= world_size()
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)

