"""Continuous flow mode for numeric horizons: the same Transformer, continuous values in and out.

Horizon cells hold the squashed, context-scaled value ``x = asinh(clip(z)) / 3`` (see
:func:`tsdiff.model.squash`). With lm_core's convention (``t = 0`` clean, ``t = 1`` noise) the
path is ``z_t = (1 - t) x + t eps`` (:func:`lm_core.corruption.flow_interpolate`), t drawn
logit-normal per window. The denoiser predicts the clean ``x_hat``; the velocity loss
``|v_hat - v|^2`` with ``v = eps - x`` and ``v_hat = (z_t - x_hat) / t`` equals
``|x_hat - x|^2 / t^2``, used here with ``t`` clamped at 0.05 so the weights stay bounded.
Sampling (:func:`flow_paths`, picked by :mod:`tsdiff.sampling`) integrates the ODE ``dz/dt = v_hat`` from t = 1 to 0 with Euler steps (NFE = steps);
``temperature`` scales the initial noise (the flow analogue of a softmax temperature).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lm_core.corruption import flow_interpolate, logit_normal_t
from lm_core.solvers import SampleStats
from tsdiff.model import NumericDenoiser, PathRows, squash

SQUASH = 3.0  # squash(z) = asinh(z) / SQUASH


def _unsquash(u: Tensor, z_max: float) -> Tensor:
    return torch.sinh(u * SQUASH).clamp(-z_max, z_max)


def flow_loss(model: NumericDenoiser, batch: dict, *, generator=None) -> tuple[Tensor, dict]:
    """Velocity (flow-matching) loss over observed horizon cells of a batch of windows."""
    hz = model.horizon(batch)
    B = hz.windows
    x = squash(hz.scaled["z_fut"], model.cfg.z_max).flatten(1)  # [B, H*C]
    obs = hz.scaled["fut_obs"].flatten(1)
    x = torch.where(obs, x, torch.zeros_like(x))
    t = logit_normal_t(B, device=x.device, generator=generator)
    eps = torch.randn(x.shape, device=x.device, generator=generator)
    z_t = flow_interpolate(x, eps, t)
    x_hat = model.horizon_xpred(z_t, t, hz.static, hz.kvs, hz.positions)
    w = 1.0 / t.clamp(min=0.05) ** 2
    se = (x_hat - x) ** 2 * obs
    loss = (se.sum(-1) * w).sum() / obs.sum().clamp(min=1)
    return loss, {
        "mse": (se.sum() / obs.sum().clamp(min=1)).detach(),
        "masked_frac": t.mean().detach(),
    }


def flow_paths(
    model: NumericDenoiser,
    rows: PathRows,
    *,
    steps: int | None,
    temperature: float,
    generator: torch.Generator | None,
    **_unused,
) -> tuple[Tensor, SampleStats]:
    """Euler ODE sampling of the S paths of w windows with NFE = steps (default ceil(H / 4)).
    The flow has no commitment order: ``order``, ``block_length`` and ``commit`` are unused.

    Returns:
        z [w, S, H, C] in context-scaled units and the sampler's stats.
    """
    cfg = model.cfg
    C, S = cfg.n_channels, rows.num_samples
    H = rows.static.shape[1] // C  # the batch's horizon (tsdiff.model.horizon_static)
    steps = steps or max(1, math.ceil(H / 4))
    st, kv, pos = rows.static, rows.kvs, rows.positions
    n = st.shape[0]
    ts = torch.linspace(1.0, 0.0, steps + 1, device=st.device)
    z = temperature * torch.randn(n, H * C, device=st.device, generator=generator)
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        x_hat = model.horizon_xpred(z, t.expand(n), st, kv, pos)
        v = (z - x_hat) / t
        z = z + (t_next - t) * v
    stats = SampleStats(nfe=steps, committed=n * H * C, rows=n)
    return _unsquash(z, cfg.z_max).view(n // S, S, H, C), stats
