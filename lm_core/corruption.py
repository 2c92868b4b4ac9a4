"""Forward (corruption) processes and the project's one time convention.

**Time convention.** ``t`` is the noise level everywhere in this project: ``t = 0`` is clean data
and ``t = 1`` is fully masked (masked diffusion) or pure noise (flow). Masked diffusion masks each
token independently with probability ``p = (1 - eps) t + eps``; flow paths are
``z_t = (1 - t) x + t * noise``. Every other module refers here rather than restating it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_t(
    n: int,
    *,
    stratified: bool = False,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Noise levels t ~ U(0, 1): [n]. Stratified: one draw in each of n equal strata, shuffled."""
    u = torch.rand(n, device=device, generator=generator)
    if stratified:
        perm = torch.randperm(n, device=device, generator=generator)
        u = (perm.float() + u) / n
    return u


def mask_probability(t: Tensor, eps: float = 1e-3) -> Tensor:
    """p = (1 - eps) t + eps, the per-token masking probability at noise level t."""
    return (1.0 - eps) * t + eps


def mask_tokens(
    x0: Tensor,
    p: Tensor,
    mask_id: int,
    *,
    maskable: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Mask each maskable token of x0 independently with probability p.

    Args:
        x0: [B, T] clean token ids.
        p: masking probability broadcastable to [B, T] (e.g. [B, 1], or [B, T] per token).
        maskable: bool [B, T]; positions that may be masked (prompt and padding excluded).

    Returns:
        x_t [B, T] with ``mask_id`` at masked positions, and the bool mask [B, T].
    """
    u = torch.rand(x0.shape, device=x0.device, generator=generator)
    masked = u < p
    if maskable is not None:
        masked = masked & maskable
    return torch.where(masked, torch.full_like(x0, mask_id), x0), masked


def flow_interpolate(x: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """z_t = (1 - t) x + t * noise, with t broadcast over trailing dims of x: [B, ...]."""
    t = t.reshape(t.shape[0], *([1] * (x.dim() - 1))).to(x.dtype)
    return (1.0 - t) * x + t * noise


def logit_normal_t(
    n: int,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """t = sigmoid(N(mean, std)): [n], the flow-matching time density (SD3 / ELF)."""
    return torch.sigmoid(mean + std * torch.randn(n, device=device, generator=generator))
