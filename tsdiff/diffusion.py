"""Masked diffusion on numeric horizons: lm_core's objective and sampler loop, reused unchanged.

Training is :func:`lm_core.objectives.masked_diffusion_loss` with the horizon cells as the
maskable part (unobserved targets are never maskable and never scored). Forecasting is
:func:`lm_core.sampling.denoise` over a canvas of H * C hidden cells, the context's keys/values
computed once per window and shared by all S paths and all steps.

Commitment order: the ``order`` rule ranks hidden cells by a property of their predictive
distribution computed *before* the value is drawn (``entropy``: lowest entropy first; ``margin``),
or at random (``random``). ``prob`` (the probability of the drawn value, LLaDA's rule for text)
is kept for comparison only: it depends on the draw and pulls paths toward the mode.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from lm_core.objectives import masked_diffusion_loss
from lm_core.sampling import DistributionOrder, LowConfidence, SampleStats, denoise
from lm_core.sampling.policies import confidence_scores
from tsdiff.model import NumericDenoiser, windows_per_call

ORDERS = ("entropy", "margin", "random", "prob")


def horizon_loss(
    model: NumericDenoiser, batch: dict, *, eps: float = 1e-3, generator=None
) -> tuple[Tensor, dict]:
    """Masked-diffusion ELBO over horizon cells of a batch of windows (see windows.py shapes)."""
    s = model.scale_batch(batch)
    kvs = model.encode_context(s)
    static = model.horizon_static(s)
    B = static.shape[0]
    pos = model.horizon_positions(B, static.device)
    tokens, obs = model.target_tokens(s)

    def model_fn(x_t: Tensor, **_) -> Tensor:
        return model.horizon_logits(x_t, static, kvs, pos)

    return masked_diffusion_loss(
        model_fn, tokens, mask_id=model.encoder.mask_id, maskable=obs, eps=eps, generator=generator
    )


def training_loss(model: NumericDenoiser, batch: dict, *, generator=None) -> tuple[Tensor, dict]:
    """The mode's objective: masked-diffusion ELBO (masked) or velocity loss (flow)."""
    if model.cfg.mode == "flow":
        from tsdiff.flow import flow_loss

        return flow_loss(model, batch, generator=generator)
    return horizon_loss(model, batch, generator=generator)


def resolve_schedule(H: int, C: int, steps: int | None, block_length: int | None):
    """(steps, block_length in cells) with defaults: one block, steps = H (one time step a call)."""
    n = H * C
    block_length = n if block_length is None else block_length * C
    steps = max(1, -(-H // 4)) if steps is None else steps
    n_blocks = max(n // block_length, 1)
    if steps % n_blocks:
        steps = n_blocks * max(1, round(steps / n_blocks))
    return steps, block_length


@torch.no_grad()
def sample_paths(
    model: NumericDenoiser,
    batch: dict,
    num_samples: int,
    *,
    order: str = "entropy",
    steps: int | None = None,
    block_length: int | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    max_tokens: int = 2**17,
    commit: str = "hard",
    precision: str = "32",
) -> tuple[Tensor, SampleStats]:
    """Draw sample paths for a batch of windows.

    Args:
        batch: window tensors (windows.py); ``fut``/``fut_obs`` are not needed.
        num_samples: S paths per window, drawn in batched calls of whole windows, as many as
            keep rows x (context + horizon tokens) within ``max_tokens`` (bounds the memory of
            the repeated context keys/values and the logits; at least one window per call).
            While the S paths of a window still share one canvas (the first step of the masked
            mode) the network runs once per window, not once per path.
        order: commitment order rule, one of ``ORDERS``.
        steps: network evaluations per path (NFE); default ceil(H / 4). ``steps = H * C`` commits one cell
            per step; fewer steps commit several cells per step.
        block_length: horizon time steps per semi-autoregressive block (default: whole horizon).
        temperature: softmax temperature of the cell distributions (1 = the model's predictive
            distribution; the forecaster may set a calibrated value fitted on validation windows).
        commit: ``hard`` (a drawn cell is final) or ``soft`` (masked mode: drawn cells of the
            active block are re-predicted and re-drawn each step, fed as soft embeddings; see
            :mod:`tsdiff.soft_commit`; same NFE; ``order`` must not be ``prob``).
        precision: ``32`` or ``bf16`` (the network runs under bfloat16 autocast; about 2.5x
            faster on CPUs with AVX512-BF16 and on GPUs; logits stay float32).

    Returns:
        samples [B, S, H, C] in the data's units (float64: decoded as ``z * scale + loc`` with
        float64 loc/scale), and the sampler's stats (nfe is per path).
    """
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")
    if temperature <= 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature}")
    if commit not in ("hard", "soft"):
        raise ValueError(f"commit: expected 'hard' or 'soft', got {commit!r}")
    if precision not in ("32", "bf16"):
        raise ValueError(f"precision: expected '32' or 'bf16', got {precision!r}")
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return _sample_paths(
            model, batch, num_samples, order=order, steps=steps, block_length=block_length,
            temperature=temperature, generator=generator, max_tokens=max_tokens, commit=commit,
        )  # fmt: skip


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
    :class:`lm_core.sampling.DistributionOrder` on every path, without S copies of the logits.

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


def _sample_paths(
    model, batch, num_samples, *, order, steps, block_length, temperature, generator, max_tokens,
    commit,
) -> tuple[Tensor, SampleStats]:  # fmt: skip
    if model.cfg.mode == "flow":
        from tsdiff.flow import flow_sample_paths

        return flow_sample_paths(
            model, batch, num_samples, steps=steps, temperature=temperature,
            generator=generator, max_tokens=max_tokens,
        )  # fmt: skip
    cfg = model.cfg
    H, C = cfg.prediction_length, cfg.n_channels
    steps, bl = resolve_schedule(H, C, steps, block_length)
    s = model.scale_batch(batch)
    kvs = model.encode_context(s)
    static = model.horizon_static(s)
    B = static.shape[0]
    if order == "prob":  # value-dependent order: draw every hidden cell, commit the likeliest draws
        policy = LowConfidence(temperature=1.0, confidence="prob")
    else:  # order fixed before drawing; values drawn only for the committed cells
        policy = DistributionOrder(order=order, temperature=1.0)
    per_chunk = windows_per_call(cfg, num_samples, max_tokens)
    outs, total = [], SampleStats(rows=0)
    for b0 in range(0, B, per_chunk):
        b1 = min(B, b0 + per_chunk)
        n = (b1 - b0) * num_samples
        kv1, st1 = [(k[b0:b1], v[b0:b1]) for k, v in kvs], static[b0:b1]  # one row per window
        kv = model.repeat_kv(kv1, num_samples)
        st = st1.repeat_interleave(num_samples, 0)
        pos = model.horizon_positions(n, st.device)

        def model_fn(x: Tensor, kv=kv, kv1=kv1, st=st, st1=st1, pos=pos) -> Tensor:
            # x [w*S, H*C]. When the S paths of every window hold the same canvas (the first step:
            # nothing drawn yet), their logits are equal: evaluate one row per window, then repeat.
            xs = x.view(st1.shape[0], num_samples, -1)
            if num_samples > 1 and bool((xs == xs[:, :1]).all()):
                one = model.horizon_logits(xs[:, 0], st1, kv1, pos[: st1.shape[0]]) / temperature
                return one.repeat_interleave(num_samples, 0)
            return model.horizon_logits(x, st, kv, pos) / temperature

        canvas = torch.full((n, H * C), model.encoder.mask_id, dtype=torch.long, device=st.device)
        editable = torch.ones_like(canvas, dtype=torch.bool)
        left, nfe0, t0 = steps, 0, time.perf_counter()
        if commit == "hard" and order in ("entropy", "margin") and bl == H * C:
            canvas = shared_first_step(
                model, st1, kv1, pos[: st1.shape[0]], num_samples, n_commit=-(-(H * C) // steps),
                order=order, temperature=temperature, generator=generator,
            )  # fmt: skip
            left, nfe0 = steps - 1, 1
        if commit == "soft":
            from tsdiff.soft_commit import soft_denoise

            ids, stats = soft_denoise(
                model, st, kv, pos, steps=steps, block_length=bl, order=order,
                temperature=temperature, generator=generator, shared=(st1, kv1, num_samples),
            )  # fmt: skip
        elif left == 0:
            ids, stats = canvas, SampleStats(rows=n)
        else:
            ids, stats = denoise(
                model_fn,
                canvas,
                editable,
                mask_id=model.encoder.mask_id,
                policy=policy,
                steps=left,
                block_length=bl,
                generator=generator,
            )
        if nfe0:  # the shared first step: one more call, and the cells it drew
            stats.nfe += nfe0
            stats.committed += int((canvas != model.encoder.mask_id).sum())
            stats.seconds = time.perf_counter() - t0
        outs.append(model.encoder.decode(ids, generator=generator).view(b1 - b0, num_samples, H, C))
        total.nfe = stats.nfe
        total.committed += stats.committed
        total.rows += stats.rows
        total.seconds += stats.seconds
    z = torch.cat(outs, 0)
    samples = z * s["scale"][:, None] + s["loc"][:, None]
    return samples, total
