"""DMax soft parallel decoding: the frontier, the soft embedding and the block loop.

**Decoding** (:func:`soft_denoise`; prompts and text: :func:`lm_core.text.generate.dmax_generate`). Blocks of ``block_length`` cells are filled left to
right. Inside the active block a *frontier* f (cells 0..f-1 of the block are "decoded") moves
left to right: at each step the model predicts every cell of the block, p_i = max softmax and
top1_i = argmax; the frontier then moves over the run of consecutive cells from f with
p_i >= ``tau`` and always by at least one cell (progress), see :func:`advance_frontier`.
Every decoded cell is re-predicted at every step and its next input is the *soft embedding*
(:func:`soft_embedding`)::

    e_i = p_i * E[top1_i] + (1 - p_i) * E[MASK],   rescaled to norm p_i |E[top1_i]| + (1 - p_i) |E[MASK]|

(the rescaling undoes the shrinking of a mix of two nearly orthogonal vectors; at p = 1 the
input is exactly the token's embedding, at p = 0 exactly the mask's). Cells past the frontier
stay MASK. The block ends, and its cells become the hard tokens top1, when the frontier has
reached the end and either every cell has p >= ``stop_conf`` (0.9) or no top1 changed since the
previous step; ``max_steps_per_block`` (default 2 * block_length) bounds the loop. NFE counts
model calls; TPF = generated tokens per row / NFE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


def soft_embedding(weight: Tensor, top1: Tensor, conf: Tensor, mask_id: int) -> Tensor:
    """DMax's soft input: p E[top1] + (1 - p) E[MASK], rescaled to p |E[top1]| + (1 - p) |E[MASK]|.

    Args:
        weight: [V, d] input embedding matrix. top1: [...] long. conf: [...] p in [0, 1].

    Returns:
        [..., d] embeddings (dtype of ``weight``).
    """
    e_tok = weight[top1].float()
    e_mask = weight[mask_id].float()
    p = conf.float()[..., None]
    mix = p * e_tok + (1.0 - p) * e_mask
    target = p * e_tok.norm(dim=-1, keepdim=True) + (1.0 - p) * e_mask.norm()
    return (mix * (target / mix.norm(dim=-1, keepdim=True).clamp_min(1e-12))).to(weight.dtype)


def advance_frontier(conf: Tensor, frontier: Tensor, tau: float) -> Tensor:
    """New frontier [B]: from ``frontier`` move over consecutive cells with p >= tau, at least one.

    conf: [B, N] confidences of the block's cells; frontier: [B] long in [0, N].
    """
    N = conf.shape[-1]
    idx = torch.arange(N, device=conf.device)[None]
    blocked = (conf < tau) & (idx >= frontier[:, None])  # first such cell stops the run
    first_low = torch.where(blocked, idx, torch.full_like(idx, N)).min(-1).values
    return torch.maximum(first_low, frontier + 1).clamp(max=N)


def check_soft_args(gen_length, block_length, tau, stop_conf, longest, max_seq_len) -> None:
    """ValueError naming the field unless the settings are valid and the canvas fits."""
    for name, v in (("gen_length", gen_length), ("block_length", block_length)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    if gen_length % block_length:
        raise ValueError(
            f"gen_length={gen_length} must be a multiple of block_length={block_length}"
        )
    for name, v in (("tau", tau), ("stop_conf", stop_conf)):
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name}: expected a number in (0, 1], got {v}")
    if longest + gen_length > max_seq_len:
        raise ValueError(
            f"prompt: {longest} prompt tokens + {gen_length} new tokens exceed the model's "
            f"context (max_seq_len={max_seq_len})"
        )


@torch.no_grad()
def decode_block(model, emb, x, cols, live, cond, *, mask_id, tau, stop_conf, max_steps, soft=True,
                 forward=None):  # fmt: skip
    """Soft-decode canvas columns ``cols`` for the ``live`` rows in place; returns per-row NFE [B].

    ``emb`` [B, T, d] the model's inputs, ``x`` [B, T] the hard cells, ``live`` bool [B];
    ``cond`` extra model inputs (``attn_mask``, ``positions``), sliced per row. ``soft=False``:
    decoded cells are fed back as their hard top-1 embedding (an ablation). ``forward``: a
    :class:`~lm_core.solvers.cache.BlockForward` giving the block's logits (cached), instead
    of the whole canvas through ``model``."""
    weight = model.tok_emb.weight
    B, N = x.shape[0], cols.stop - cols.start
    frontier = torch.zeros(B, dtype=torch.long, device=x.device)
    prev = torch.full((B, N), -1, dtype=torch.long, device=x.device)
    todo, nfe = live.clone(), torch.zeros(B, dtype=torch.long, device=x.device)
    idx = torch.arange(N, device=x.device)[None]
    for step in range(max_steps):
        rows = todo.nonzero().squeeze(-1)
        if rows.numel() == 0:
            break
        if forward is None:
            sub = {k: None if v is None else v[rows] for k, v in cond.items()}
            logits = model(inputs_embeds=emb[rows], **sub)[:, cols].float()
        else:
            logits = forward(emb[rows], cols.start, cols.stop, step == 0, rows).float()
        if mask_id < logits.shape[-1]:
            logits[..., mask_id] = float("-inf")
        nfe[rows] += 1
        conf, top1 = torch.softmax(logits, -1).max(-1)
        f = advance_frontier(conf, frontier[rows], tau)
        full = f == N
        done = full & ((conf >= stop_conf).all(-1) | (top1 == prev[rows]).all(-1))
        done |= step == max_steps - 1
        fed = soft_embedding(weight, top1, conf, mask_id) if soft else weight[top1]
        keep = (idx < f[:, None])[..., None]
        new_emb = torch.where(keep, fed, weight[mask_id].expand_as(fed))
        hard = model.tok_emb(top1)
        new_emb = torch.where(done[:, None, None], hard, new_emb)
        emb[rows, cols] = new_emb
        x[rows[done], cols] = top1[done]
        frontier[rows], prev[rows] = f, top1
        todo[rows[done]] = False
    return nfe


@dataclass
class SoftStats:
    """Cost of one :func:`soft_denoise` call: model calls on the batch (``nfe``, the max over
    rows per block), per block, and cells decoded over live rows (``tokens``)."""

    nfe: int = 0
    tokens: int = 0
    per_block_nfe: list[int] = field(default_factory=list)


@torch.no_grad()
def soft_denoise(
    model,
    x: Tensor,
    cond: dict,
    *,
    start: int,
    block_length: int,
    mask_id: int,
    eos_id: int,
    tau: float = 0.5,
    stop_conf: float = 0.9,
    max_steps_per_block: int | None = None,
    soft: bool = True,
    forward=None,
    stop_ids: tuple[int, ...] = (),
) -> tuple[Tensor, SoftStats]:
    """DMax soft parallel decoding of the canvas ``x`` [B, T] from column ``start`` on.

    The cells ``x[:, start:]`` (all MASK; ``T - start`` a multiple of ``block_length``) are
    decoded block by block, greedy; ``cond`` holds the model's extra inputs (``attn_mask``
    [B, T, T], ``positions`` [B, T], or None). Each row keeps its own frontier and stopping
    state, and rows whose block is finished are left out of later calls for that block, so a
    row's result equals decoding it alone. Once a finished block of a row holds ``eos_id`` (or
    one of ``stop_ids``), the rest of that row is EOS and never decoded. The model needs
    ``tok_emb`` and ``inputs_embeds``. ``forward``: a cached block call (see
    :func:`decode_block`). Returns (x [B, T] with every cell decoded, :class:`SoftStats`).
    """
    B, T = x.shape
    max_steps = max_steps_per_block or 2 * block_length
    emb = model.tok_emb(x)
    stats = SoftStats()
    live = torch.ones(B, dtype=torch.bool, device=x.device)
    ends = torch.tensor([eos_id, *stop_ids], device=x.device)
    for b in range((T - start) // block_length):
        cols = slice(start + b * block_length, start + (b + 1) * block_length)
        nfe = decode_block(
            model, emb, x, cols, live, cond, mask_id=mask_id, tau=tau, stop_conf=stop_conf,
            max_steps=max_steps, soft=soft, forward=forward,
        )  # fmt: skip
        stats.nfe += int(nfe.max())
        stats.per_block_nfe.append(int(nfe.max()))
        stats.tokens += int(live.sum()) * block_length
        ended = torch.isin(x[:, start : cols.stop], ends).any(-1)
        newly = ended & live
        x[newly, cols.stop :] = eos_id
        emb[newly, cols.stop :] = model.tok_emb.weight[eos_id]
        live &= ~ended
        if not bool(live.any()):
            break
    return x, stats
