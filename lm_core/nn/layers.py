"""RMSNorm (fp32), rotary position embedding (rotate-half, fp32), SwiGLU MLP, time embedding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 whatever the input dtype.

    x: [..., d] -> [..., d] (same dtype as x).
    """

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


class RotaryEmbedding(nn.Module):
    """Rotate-half RoPE with angles computed in float32.

    ``cos_sin(positions)`` takes integer positions [B, T] and returns cos, sin of shape
    [B, T, 1, head_dim]; ``apply(x, cos, sin)`` rotates x: [B, T, H, head_dim].

    ``inv_freq`` [head_dim / 2] is a non-persistent buffer: a model built on the meta device and
    then materialised (``to_empty``) holds garbage there until ``reset_parameters()`` computes it
    again (the sharded build calls it; Lightning's materialisation calls it on every module).
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        self.register_buffer("inv_freq", self._inv_freq(None), persistent=False)

    def _inv_freq(self, device) -> Tensor:
        exponent = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=device)
        return 1.0 / (self.theta ** (exponent / self.head_dim))

    def reset_parameters(self) -> None:
        """Recompute the ``inv_freq`` buffer (float32) on the buffer's own device."""
        device = self.inv_freq.device
        self.inv_freq = self._inv_freq(None if device.type == "meta" else device)

    def cos_sin(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        ang = positions.float()[..., None] * self.inv_freq.float().to(positions.device)
        ang = torch.cat([ang, ang], dim=-1)[:, :, None, :]
        return ang.cos(), ang.sin()

    @staticmethod
    def apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        xf = x.float()
        x1, x2 = xf.chunk(2, dim=-1)
        rotated = torch.cat([-x2, x1], dim=-1)
        return (xf * cos + rotated * sin).to(x.dtype)


class SwiGLU(nn.Module):
    """SwiGLU MLP without biases: down(silu(gate(x)) * up(x)). x: [..., d] -> [..., d]."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(d, hidden, bias=False)
        self.up = nn.Linear(d, hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class TimeEmbedding(nn.Module):
    """Sinusoidal features of the noise level t in [0, 1] followed by a small MLP.

    t: [B] -> [B, d].
    """

    def __init__(self, d: int, n_freq: int = 128) -> None:
        super().__init__()
        self.n_freq = n_freq
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_freq, d, bias=True), nn.SiLU(), nn.Linear(d, d, bias=True)
        )

    def forward(self, t: Tensor) -> Tensor:
        freqs = torch.exp(
            -math.log(10000.0) * torch.arange(self.n_freq, device=t.device) / self.n_freq
        )
        ang = 1000.0 * t.float()[:, None] * freqs[None]
        feats = torch.cat([ang.sin(), ang.cos()], dim=-1)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))
