"""Masked diffusion on numeric horizons: lm_core's objective and sampler loop, reused unchanged.

Training is :func:`lm_core.objectives.masked_diffusion_loss` with the horizon cells as the
maskable part (unobserved targets are never maskable and never scored). Forecasting is
:func:`lm_core.solvers.denoise` over a canvas of H * C hidden cells, the context's keys/values
computed once per window and shared by all S paths and all steps (the set-up is
:meth:`tsdiff.model.NumericDenoiser.horizon`; :mod:`tsdiff.sampling` picks the sampler).

Commitment order: the ``order`` rule ranks hidden cells by a property of their predictive
distribution computed *before* the value is drawn (``entropy``: lowest entropy first; ``margin``),
or at random (``random``). ``prob`` (the probability of the drawn value, LLaDA's rule for text)
is kept for comparison only: it depends on the draw and pulls paths toward the mode.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from lm_core.objectives.masked import masked_diffusion_loss
from lm_core.solvers import DistributionOrder, LowConfidence, SampleStats, denoise
from lm_core.solvers.policies import confidence_scores
from tsdiff.model import NumericDenoiser, PathRows

ORDERS = ("entropy", "margin", "random", "prob")


def horizon_loss(
    model: NumericDenoiser, batch: dict, *, eps: float = 1e-3, generator=None
) -> tuple[Tensor, dict]:
    """Masked-diffusion ELBO over horizon cells of a batch of windows (see windows.py shapes)."""
    hz = model.horizon(batch)
    tokens, obs = model.target_tokens(hz.scaled)

    def model_fn(x_t: Tensor, **_) -> Tensor:
        return model.horizon_logits(x_t, hz.static, hz.kvs, hz.positions)

    return masked_diffusion_loss(
        model_fn, tokens, mask_id=model.encoder.mask_id, maskable=obs, eps=eps, generator=generator
    )


def resolve_schedule(H: int, C: int, steps: int | None, block_length: int | None):
    """(steps, block_length in cells) with defaults: one block, steps = H (one time step a call)."""
    n = H * C
    block_length = n if block_length is None else block_length * C
    steps = max(1, -(-H // 4)) if steps is None else steps
    n_blocks = max(n // block_length, 1)
    if steps % n_blocks:
        steps = n_blocks * max(1, round(steps / n_blocks))
    return steps, block_length


def shared_first_step(
    model: NumericDenoiser,
    static: Tensor,
    kvs: list,
    positions: Tensor,
    num_samples: int,
    *,
    n_commit: int,
    order: str,
    temperature: float,
    generator: torch.Generator | None,
) -> Tensor:
    """The first sampler step, done once per window: all S paths of a window still hold the
    all-MASK canvas, so they share the logits and, for a value-independent order fixed by those
    logits (entropy, margin), the cells to commit. The network runs on one row per window, the
    order is ranked once, and the S values of each committed cell are S inverse-CDF draws
    (float64) from that cell's distribution at ``temperature``: the same distribution as running
    :class:`lm_core.solvers.DistributionOrder` on every path, without S copies of the logits.

    Args:
        static: [w, H*C, d] horizon embeddings of the w windows; kvs: their cached context.
        n_commit: cells committed by this step (the first count of the step schedule).

    Returns:
        canvas [w * S, H*C] (window-major) with the committed cells drawn, MASK elsewhere.
    """
    w, N = static.shape[:2]
    mask_id = model.encoder.mask_id
    canvas = torch.full((w, N), mask_id, dtype=torch.long, device=static.device)
    logits = model.horizon_logits(canvas, static, kvs, positions) / temperature  # [w, N, V]
    score = confidence_scores(logits, canvas, order)
    cells = score.argsort(dim=-1, descending=True, stable=True)[:, :n_commit]  # [w, k]
    chosen = logits.gather(1, cells[..., None].expand(-1, -1, logits.shape[-1]))
    cdf = torch.softmax(chosen.double(), dim=-1).cumsum(-1)  # [w, k, V]
    u = torch.rand(
        (w, n_commit, num_samples), dtype=torch.float64, device=cdf.device, generator=generator
    )
    ids = torch.searchsorted(cdf, u * cdf[..., -1:]).clamp_max(cdf.shape[-1] - 1)  # [w, k, S]
    out = canvas[:, None].repeat(1, num_samples, 1)  # [w, S, N]
    out.scatter_(2, cells[:, None].expand(-1, num_samples, -1), ids.transpose(1, 2))
    return out.view(w * num_samples, N)


def hard_paths(
    model: NumericDenoiser,
    rows: PathRows,
    *,
    order: str,
    steps: int | None,
    block_length: int | None,
    temperature: float,
    generator: torch.Generator | None,
) -> tuple[Tensor, SampleStats]:
    """Hard commitment (a drawn cell is final) for the S paths of w windows.

    Returns:
        z [w, S, H, C] in context-scaled units (bin centres) and the sampler's stats.
    """
    cfg = model.cfg
    H, C = cfg.prediction_length, cfg.n_channels
    steps, bl = resolve_schedule(H, C, steps, block_length)
    if order == "prob":  # value-dependent order: draw every hidden cell, commit the likeliest draws
        policy = LowConfidence(temperature=1.0, confidence="prob")
    else:  # order fixed before drawing; values drawn only for the committed cells
        policy = DistributionOrder(order=order, temperature=1.0)
    S, mask_id = rows.num_samples, model.encoder.mask_id
    w, n = rows.static1.shape[0], rows.static.shape[0]
    st, kv, st1, kv1, pos = rows.static, rows.kvs, rows.static1, rows.kvs1, rows.positions

    def model_fn(x: Tensor) -> Tensor:
        # x [w*S, H*C]. When the S paths of every window hold the same canvas (the first step:
        # nothing drawn yet), their logits are equal: evaluate one row per window, then repeat.
        xs = x.view(w, S, -1)
        if S > 1 and bool((xs == xs[:, :1]).all()):
            one = model.horizon_logits(xs[:, 0], st1, kv1, pos[:w]) / temperature
            return one.repeat_interleave(S, 0)
        return model.horizon_logits(x, st, kv, pos) / temperature

    canvas = torch.full((n, H * C), mask_id, dtype=torch.long, device=st.device)
    editable = torch.ones_like(canvas, dtype=torch.bool)
    left, nfe0, t0 = steps, 0, time.perf_counter()
    if order in ("entropy", "margin") and bl == H * C:
        canvas = shared_first_step(
            model, st1, kv1, pos[:w], S, n_commit=-(-(H * C) // steps), order=order,
            temperature=temperature, generator=generator,
        )  # fmt: skip
        left, nfe0 = steps - 1, 1
    if left == 0:
        ids, stats = canvas, SampleStats(rows=n)
    else:
        ids, stats = denoise(
            model_fn, canvas, editable, mask_id=mask_id, policy=policy, steps=left,
            block_length=bl, generator=generator,
        )  # fmt: skip
    if nfe0:  # the shared first step: one more call, and the cells it drew
        stats.nfe += nfe0
        stats.committed += int((canvas != mask_id).sum())
        stats.seconds = time.perf_counter() - t0
    return model.encoder.decode(ids, generator=generator).view(w, S, H, C), stats
