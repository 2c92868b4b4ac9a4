"""The boundary between numbers and the token denoiser (as in Chronos).

Two steps, both per series and per channel:

1. **Scaling** from the context only: ``z = (y - loc) / scale`` with ``loc`` the mean and
   ``scale`` the standard deviation of the observed context values. A constant (or single-point)
   context gets a safe scale: ``max(std, 1e-2 * mean|y|, 1e-6)``, so it never divides by zero.
2. **Value tokens** (masked mode): ``z`` is clipped to ``[-z_max, z_max]`` and binned uniformly in
   ``asinh`` space, which gives fine bins near the context's typical range and coarse bins in the
   tails (uniform bins over a clipped range, as in Chronos, waste most bins on rare values; plain
   asinh-uniform bins keep about 70 % of bins within +-3 standard deviations at the default
   settings). Decoding draws uniformly within the bin (in asinh space), so samples are continuous,
   not lattice-valued.

Shapes: values ``[..., L, C]`` with the statistics ``[..., 1, C]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def context_scale(
    values: Tensor, observed: Tensor, min_scale: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """Mean and safe standard deviation of the observed context.

    Args:
        values: [B, L, C] context values (NaN allowed where unobserved).
        observed: bool [B, L, C].

    Returns:
        loc, scale: [B, 1, C] each; a channel with no observed value gets loc 0, scale 1.
    """
    obs = observed.to(values.dtype)
    v = torch.where(observed, values, torch.zeros_like(values))
    n = obs.sum(dim=-2, keepdim=True)
    loc = v.sum(dim=-2, keepdim=True) / n.clamp(min=1)
    var = ((v - loc) ** 2 * obs).sum(dim=-2, keepdim=True) / n.clamp(min=1)
    mean_abs = (v.abs() * obs).sum(dim=-2, keepdim=True) / n.clamp(min=1)
    scale = torch.maximum(var.sqrt(), 1e-2 * mean_abs).clamp(min=min_scale)
    none = n == 0
    loc = torch.where(none, torch.zeros_like(loc), loc)
    scale = torch.where(none, torch.ones_like(scale), scale)
    return loc, scale


@dataclass
class BinEncoder:
    """Uniform bins in asinh space over ``[-z_max, z_max]`` of scaled values.

    ``n_bins`` value tokens have ids ``0 .. n_bins - 1``; ``mask_id = n_bins`` is the hidden cell.
    """

    n_bins: int = 256
    z_max: float = 20.0

    def __post_init__(self) -> None:
        if self.n_bins < 2:
            raise ValueError(f"n_bins: expected at least 2, got {self.n_bins}")
        if self.z_max <= 0:
            raise ValueError(f"z_max: expected a positive number, got {self.z_max}")
        self.u_max = math.asinh(self.z_max)

    @property
    def mask_id(self) -> int:
        return self.n_bins

    @property
    def vocab_size(self) -> int:
        """Bins plus the mask token."""
        return self.n_bins + 1

    def encode(self, z: Tensor) -> Tensor:
        """Scaled values z [...] -> bin ids [...] (long); values beyond +-z_max go to the end bins."""
        u = torch.asinh(z.clamp(-self.z_max, self.z_max)) / self.u_max  # in [-1, 1]
        idx = ((u + 1.0) * 0.5 * self.n_bins).floor().long()
        return idx.clamp(0, self.n_bins - 1)

    def bin_edges(self, device=None) -> Tensor:
        """Bin edges in z: [n_bins + 1]."""
        u = torch.linspace(-1.0, 1.0, self.n_bins + 1, device=device)
        return torch.sinh(u * self.u_max)

    def decode(self, ids: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Bin ids [...] -> scaled values z [...], drawn uniformly (in asinh space) within the bin."""
        jitter = torch.rand(ids.shape, device=ids.device, generator=generator)
        u = (ids.float() + jitter) / self.n_bins * 2.0 - 1.0
        return torch.sinh(u * self.u_max)

    def centers(self, device=None) -> Tensor:
        """Bin centres in z: [n_bins] (used for means from logits)."""
        u = (torch.arange(self.n_bins, device=device).float() + 0.5) / self.n_bins * 2.0 - 1.0
        return torch.sinh(u * self.u_max)
