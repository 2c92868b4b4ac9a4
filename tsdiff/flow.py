"""Continuous flow mode for numeric horizons: the same Transformer, continuous values in and out.

Horizon cells hold the squashed, context-scaled value ``x = asinh(clip(z)) / 3`` (see
:func:`tsdiff.model.squash`). With lm_core's convention (``t = 0`` clean, ``t = 1`` noise) the
path is ``z_t = (1 - t) x + t eps`` (:func:`lm_core.corruption.flow_interpolate`), t drawn
logit-normal per window. The denoiser predicts the clean ``x_hat``; the velocity loss
``|v_hat - v|^2`` with ``v = eps - x`` and ``v_hat = (z_t - x_hat) / t`` equals
``|x_hat - x|^2 / t^2``, used here with ``t`` clamped at 0.05 so the weights stay bounded.
Sampling integrates the ODE ``dz/dt = v_hat`` from t = 1 to 0 with Euler steps (NFE = steps);
``temperature`` scales the initial noise (the flow analogue of a softmax temperature).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lm_core.corruption import flow_interpolate, logit_normal_t
from lm_core.solvers import SampleStats
from tsdiff.model import NumericDenoiser, squash, windows_per_call

SQUASH = 3.0  # squash(z) = asinh(z) / SQUASH


def _unsquash(u: Tensor, z_max: float) -> Tensor:
    return torch.sinh(u * SQUASH).clamp(-z_max, z_max)


def flow_loss(model: NumericDenoiser, batch: dict, *, generator=None) -> tuple[Tensor, dict]:
    """Velocity (flow-matching) loss over observed horizon cells of a batch of windows."""
    s = model.scale_batch(batch)
    kvs = model.encode_context(s)
    static = model.horizon_static(s)
    B = static.shape[0]
    pos = model.horizon_positions(B, static.device)
    x = squash(s["z_fut"], model.cfg.z_max).flatten(1)  # [B, H*C]
    obs = s["fut_obs"].flatten(1)
    x = torch.where(obs, x, torch.zeros_like(x))
    t = logit_normal_t(B, device=x.device, generator=generator)
    eps = torch.randn(x.shape, device=x.device, generator=generator)
    z_t = flow_interpolate(x, eps, t)
    x_hat = model.horizon_xpred(z_t, t, static, kvs, pos)
    w = 1.0 / t.clamp(min=0.05) ** 2
    se = (x_hat - x) ** 2 * obs
    loss = (se.sum(-1) * w).sum() / obs.sum().clamp(min=1)
    return loss, {
        "mse": (se.sum() / obs.sum().clamp(min=1)).detach(),
        "masked_frac": t.mean().detach(),
    }


@torch.no_grad()
def flow_sample_paths(
    model: NumericDenoiser,
    batch: dict,
    num_samples: int,
    *,
    steps: int | None = None,
    temperature: float = 1.0,
    generator=None,
    max_tokens: int = 2**17,
    **_ignored,
) -> tuple[Tensor, SampleStats]:
    """Euler ODE sampling: S paths per window, [B, S, H, C] in data units, with NFE = steps."""
    cfg = model.cfg
    H, C = cfg.prediction_length, cfg.n_channels
    steps = steps or max(1, math.ceil(H / 4))
    s = model.scale_batch(batch)
    kvs = model.encode_context(s)
    static = model.horizon_static(s)
    B = static.shape[0]
    per_chunk = windows_per_call(cfg, num_samples, max_tokens)
    outs, stats = [], SampleStats(rows=0)
    ts = torch.linspace(1.0, 0.0, steps + 1, device=static.device)
    for b0 in range(0, B, per_chunk):
        b1 = min(B, b0 + per_chunk)
        n = (b1 - b0) * num_samples
        kv = model.repeat_kv([(k[b0:b1], v[b0:b1]) for k, v in kvs], num_samples)
        st = static[b0:b1].repeat_interleave(num_samples, 0)
        pos = model.horizon_positions(n, st.device)
        z = temperature * torch.randn(n, H * C, device=st.device, generator=generator)
        for i in range(steps):
            t, t_next = ts[i], ts[i + 1]
            x_hat = model.horizon_xpred(z, t.expand(n), st, kv, pos)
            v = (z - x_hat) / t
            z = z + (t_next - t) * v
        outs.append(_unsquash(z, cfg.z_max).view(b1 - b0, num_samples, H, C))
        stats.rows += n
        stats.committed += n * H * C
    stats.nfe = steps
    out = torch.cat(outs, 0)
    return out * s["scale"][:, None] + s["loc"][:, None], stats
