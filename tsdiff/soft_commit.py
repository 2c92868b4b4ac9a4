"""Soft, revisable commitment (DMax-style) for the masked numeric mode.

``sample_paths(..., commit="soft")`` (:mod:`tsdiff.sampling`). The step schedule and the order rule are those of the hard
sampler (:class:`lm_core.solvers.DistributionOrder`): at step s of a block, the ``k_s`` hidden
cells ranked first by a property of their predictive distribution (``entropy``, ``margin``) or
at random are *drawn*, an order that never looks at values. Unlike the hard sampler, a drawn cell
is not frozen: at every later step of its block it is re-predicted and **re-drawn** from its new
predictive distribution, and its next input is a soft embedding of the current draw b_i::

    e_i = m_i E[b_i] + (1 - m_i) E[MASK]   (norm rescaled, :func:`lm_core.solvers.soft.soft_embedding`)

where m_i is the predictive mass within ``radius`` bins of b_i (default n_bins // 32; one
narrow bin's probability is small even for a sharp forecast, so the mass *near* the draw is the
confidence). The drawn bin, not the mean of the distribution, is mixed in, so every path keeps its
own random state and cells condition on the path's draws. When the block's last step has drawn
every cell, each cell's final bin is its draw from its last predictive distribution (temperature
1 on the sampler's possibly calibrated logits), so paths remain samples; the block's inputs then
become the hard embeddings of those bins for later blocks. NFE equals the hard sampler's.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from lm_core.solvers.loop import SampleStats, block_index, check_schedule
from lm_core.solvers.policies import confidence_scores, top_k_mask
from lm_core.solvers.soft import soft_embedding
from tsdiff.diffusion import commit_counts, resolve_schedule
from tsdiff.model import NumericDenoiser, PathRows

SOFT_ORDERS = ("entropy", "margin", "random")


def draw_bins(logits: Tensor, generator=None) -> Tensor:
    """Inverse-CDF draws in float64: logits [M, V] -> bins [M]."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, dtype=torch.float64, device=cdf.device, generator=generator)
    return torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_max(cdf.shape[-1] - 1).squeeze(-1)


def local_mass(logits: Tensor, bins: Tensor, radius: int) -> Tensor:
    """Predictive mass of bins within ``radius`` of ``bins``: logits [M, V], bins [M] -> [M]."""
    cdf = torch.softmax(logits.float(), dim=-1).cumsum(-1)
    V = cdf.shape[-1]
    hi = cdf.gather(-1, (bins + radius).clamp(max=V - 1)[:, None]).squeeze(-1)
    lo_idx = bins - radius - 1
    lo = cdf.gather(-1, lo_idx.clamp(min=0)[:, None]).squeeze(-1)
    return (hi - torch.where(lo_idx >= 0, lo, torch.zeros_like(lo))).clamp(0.0, 1.0)


@torch.no_grad()
def soft_denoise(
    model,
    static: Tensor,
    kvs,
    positions: Tensor,
    *,
    steps: int,
    block_length: int,
    order: str = "entropy",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    radius: int | None = None,
    shared: tuple[Tensor, list, int] | None = None,
    schedule: str = "linear",
) -> tuple[Tensor, SampleStats]:
    """Soft-commit sampling of horizon bins for n rows (paths).

    Args:
        model: a masked-mode :class:`tsdiff.model.NumericDenoiser`.
        static: [n, N] horizon static embeddings [n, N, d]; kvs: cached context per layer;
            positions: [n, N] RoPE positions.
        steps, block_length: as in :func:`lm_core.solvers.denoise` (cells per block).
        order: ``entropy``, ``margin`` or ``random`` (value-independent).
        temperature: divides the logits (1 = the model's predictive distribution).
        shared: ``(static1, kvs1, S)`` with one row per window when the n rows are S paths of
            each window: the first step (every path still all-MASK) then runs the network once
            per window and repeats the logits, as the hard sampler does.
        schedule: cells drawn per step, :func:`tsdiff.diffusion.commit_counts`.

    Returns:
        bins [n, N] long and the sampler's :class:`SampleStats`.
    """
    if order not in SOFT_ORDERS:
        raise ValueError(f"order: commit='soft' takes one of {SOFT_ORDERS}, got {order!r}")
    enc = model.encoder
    weight = model.backbone.tok_emb.weight
    radius = max(1, enc.n_bins // 32) if radius is None else int(radius)
    n, N, _ = static.shape
    ids = torch.full((n, N), enc.mask_id, dtype=torch.long, device=static.device)
    emb = weight[enc.mask_id].expand(n, N, -1).clone()
    drawn = torch.zeros(n, N, dtype=torch.bool, device=static.device)
    per_block = check_schedule(N, block_length, steps)
    blocks = block_index(torch.ones_like(drawn), block_length)
    stats = SampleStats(rows=n)
    t0 = time.perf_counter()
    for b in range(N // block_length):
        in_block = blocks == b
        counts = commit_counts(block_length, per_block, schedule)
        for s, k in enumerate(counts):
            if shared is not None and b == 0 and s == 0:  # all paths of a window still alike
                st1, kv1, S = shared
                x1 = emb[::S] + st1
                h = model.backbone(
                    inputs_embeds=x1, positions=positions[::S], kv_prefix=kv1, return_hidden=True
                )
                logits = model.head(h).float().repeat_interleave(S, 0) / temperature
            else:
                h = model.backbone(
                    inputs_embeds=emb + static, positions=positions, kv_prefix=kvs,
                    return_hidden=True,
                )  # fmt: skip
                logits = model.head(h).float() / temperature
            stats.nfe += 1
            hidden = in_block & ~drawn
            if order == "random":
                score = torch.rand(hidden.shape, device=hidden.device, generator=generator)
            else:
                score = confidence_scores(logits, torch.zeros_like(ids), order)
            new = top_k_mask(score, hidden, torch.full((n,), k, device=hidden.device))
            stats.committed += int(new.sum())
            drawn |= new
            live = in_block & drawn
            bins = draw_bins(logits[live], generator)
            ids[live] = bins
            conf = local_mass(logits[live], bins, radius)
            emb[live] = soft_embedding(weight, bins, conf, enc.mask_id)
        emb[in_block] = weight[ids[in_block]]
        stats.per_block_nfe.append(len(counts))
    stats.seconds = time.perf_counter() - t0
    return ids, stats


def soft_paths(
    model: NumericDenoiser,
    rows: PathRows,
    *,
    order: str,
    steps: int | None,
    block_length: int | None,
    temperature: float,
    generator: torch.Generator | None,
    schedule: str = "linear",
) -> tuple[Tensor, SampleStats]:
    """Soft commitment for the S paths of w windows (the schedule of the hard sampler,
    :func:`tsdiff.diffusion.resolve_schedule`).

    Returns:
        z [w, S, H, C] in context-scaled units (bin centres) and the sampler's stats.
    """
    cfg = model.cfg
    C, S = cfg.n_channels, rows.num_samples
    H = rows.static.shape[1] // C  # the batch's horizon (tsdiff.model.horizon_static)
    steps, bl = resolve_schedule(H, C, steps, block_length)
    ids, stats = soft_denoise(
        model, rows.static, rows.kvs, rows.positions, steps=steps, block_length=bl, order=order,
        temperature=temperature, generator=generator, shared=(rows.static1, rows.kvs1, S),
        schedule=schedule,
    )  # fmt: skip
    w = rows.static1.shape[0]
    return model.encoder.decode(ids, generator=generator).view(w, S, H, C), stats
