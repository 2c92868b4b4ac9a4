"""DMax: on-policy self-correction training and soft parallel decoding for masked diffusion LMs.

**Training** (:func:`dmax_loss`, ``objective.kind: dmax``). Each sequence (a padded row, or a
packed document) is masked as usual, x_t = mask(x_0, t). A share ``share`` of the sequences is
then turned into *self-correction* sequences: a no-grad pass of the model on x_t proposes the
argmax (never MASK) at every masked cell and those proposals replace the masks (the model's own
predictions, right or wrong; no MASK is left in such a sequence). The loss of a self-correction
sequence is the plain cross-entropy at *every* maskable cell (response cells for SFT batches,
all real tokens for plain text) against the clean tokens, so the model learns both to keep
right tokens and to revise wrong ones. The other sequences keep the masked-diffusion ELBO term
(CE / p on masked cells). Both parts are summed and normalised like
:func:`lm_core.objectives.masked_diffusion_loss` (``tokens`` or per-``answer``); the
self-correction part is a denoising loss, not an ELBO term, so ``val/ppl_bound`` of a dmax run
is not a likelihood bound (score it with a masked objective).

**Decoding** (:func:`dmax_generate`). Blocks of ``block_length`` cells are filled left to
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

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_core.corruption import mask_probability, mask_tokens, sample_t
from lm_core.nn.attention import document_ids
from lm_core.sampling.generate import (
    GenerationResult,
    GenerationStats,
    _cut_at_eos,
    _special_ids,
    attention_inputs,
    encode_prompts,
    left_pad,
)

# ----------------------------------------------------------------------------- training


def _units(input_ids: Tensor, cu_seqlens: Tensor | None) -> tuple[Tensor, int]:
    """Sequence id of each cell [B, T] (rows, or packed documents) and the number of sequences."""
    B, T = input_ids.shape
    if cu_seqlens is None:
        return torch.arange(B, device=input_ids.device)[:, None].expand(B, T), B
    n = cu_seqlens.numel() - 1
    return document_ids(cu_seqlens.to(input_ids.device), T)[None], n


@torch.no_grad()
def self_correction_inputs(
    model, x_t: Tensor, masked: Tensor, replace: Tensor, *, mask_id: int, **model_kw
) -> Tensor:
    """x_t with the masked cells in ``replace`` (bool [B, T]) set to the model's argmax.

    A no-grad pass on x_t; the MASK id is never proposed. Returns [B, T] long.
    """
    logits = model(x_t, **model_kw).float()
    if mask_id < logits.shape[-1]:
        logits[..., mask_id] = float("-inf")
    return torch.where(masked & replace, logits.argmax(-1), x_t)


def dmax_loss(
    model,
    input_ids: Tensor,
    *,
    mask_id: int,
    share: float = 0.5,
    maskable: Tensor | None = None,
    cu_seqlens: Tensor | None = None,
    attn_mask: Tensor | None = None,
    eps: float = 1e-3,
    stratified: bool = False,
    normalise: str = "tokens",
    mask_ratio: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict]:
    """On-policy self-correction loss (see the module docstring).

    Args:
        input_ids: [B, T] clean tokens (B = 1 and ``cu_seqlens`` for a packed batch).
        share: probability that a sequence (row or packed document) is a self-correction one.
        maskable: bool [B, T] cells that may be masked and are scored (SFT: the response).
        normalise: ``tokens`` (sum over the maskable count) or ``answer`` (per-row mean, then
            mean over rows), as in :func:`lm_core.objectives.masked_diffusion_loss`.
        mask_ratio: mask every maskable cell with this fixed probability in every sequence
            (the DMax reference trains at 0.75) instead of p = t, t ~ U(eps, 1) per sequence.

    Returns:
        loss and stats {"masked_frac", "ce_masked", "sc_frac", "sc_wrong_frac", "ce_sc"}.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share: expected a number in [0, 1], got {share}")
    if maskable is None:
        maskable = torch.ones_like(input_ids, dtype=torch.bool)
    if mask_ratio is not None and not 0.0 < mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio: expected a number in (0, 1], got {mask_ratio}")
    unit, n_units = _units(input_ids, cu_seqlens)
    if mask_ratio is None:
        t_unit = sample_t(
            n_units, stratified=stratified, device=input_ids.device, generator=generator
        )
        p = mask_probability(t_unit[unit], eps).expand_as(input_ids)
    else:
        p = torch.full(input_ids.shape, float(mask_ratio), device=input_ids.device)
    x_t, masked = mask_tokens(input_ids, p, mask_id, maskable=maskable, generator=generator)
    u = torch.rand(n_units, device=input_ids.device, generator=generator)
    sc = (u < share)[unit].expand_as(input_ids)  # cells of self-correction sequences
    kw = {"cu_seqlens": cu_seqlens, "attn_mask": attn_mask}
    x_in = x_t
    if bool((sc & masked).any()):
        x_in = self_correction_inputs(model, x_t, masked, sc, mask_id=mask_id, **kw)
    logits = model(x_in, **kw)
    ce = F.cross_entropy(logits.flatten(0, 1).float(), input_ids.flatten(), reduction="none")
    ce = ce.view_as(p)
    plain = masked & ~sc
    scored_sc = sc & maskable
    weighted = torch.where(plain, ce / p.float(), torch.zeros_like(ce))
    weighted = torch.where(scored_sc, ce, weighted)
    if normalise == "answer":
        loss = (weighted.sum(-1) / maskable.sum(-1).clamp(min=1)).mean()
    elif normalise == "tokens":
        loss = weighted.sum() / maskable.sum().clamp(min=1)
    else:
        raise ValueError(f"normalise: expected 'tokens' or 'answer', got {normalise!r}")
    replaced = masked & sc
    n = lambda m: m.sum().clamp(min=1)  # noqa: E731
    stats = {
        "masked_frac": (masked.sum() / n(maskable)).detach(),
        "ce_masked": ((ce * plain).sum() / n(plain)).detach(),
        "sc_frac": (scored_sc.sum() / n(maskable)).detach(),
        "sc_wrong_frac": (((x_in != input_ids) & replaced).sum() / n(replaced)).detach(),
        "ce_sc": ((ce * scored_sc).sum() / n(scored_sc)).detach(),
    }
    return loss, stats


# ----------------------------------------------------------------------------- decoding


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


def _check(gen_length, block_length, tau, stop_conf, longest, max_seq_len) -> None:
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
def _decode_block(
    model, emb, x, cols, live, cond, *, mask_id, tau, stop_conf, max_steps, soft=True
):
    """Soft-decode canvas columns ``cols`` for the ``live`` rows in place; returns per-row NFE [B].
    ``soft=False``: decoded cells are fed back as their hard top-1 embedding (an ablation)."""
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
        sub = {k: None if v is None else v[rows] for k, v in cond.items()}
        logits = model(inputs_embeds=emb[rows], **sub)[:, cols].float()
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


@torch.no_grad()
def dmax_generate(
    model,
    tokenizer,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    gen_length: int = 128,
    block_length: int = 32,
    tau: float = 0.5,
    stop_conf: float = 0.9,
    max_steps_per_block: int | None = None,
    soft: bool = True,
    mask_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> GenerationResult:
    """Soft parallel decoding (DMax) of a continuation of each prompt; greedy (top-1).

    Batched: prompts are left-padded as in :func:`lm_core.sampling.generate` (the same attention
    mask and positions), each row keeps its own frontier and stopping state, and rows whose block
    is finished are left out of later calls for that block, so a row's result equals decoding it
    alone. ``stats.nfe`` counts model calls on the batch (per row when B = 1); ``stats.tokens``
    the cells decoded (EOS fill after a row's end excluded). Once a finished block of a row holds
    EOS, the rest of that row is EOS and never decoded. No classifier-free guidance and no
    variable-length extension (use :func:`lm_core.sampling.generate` for those).

    Args:
        model: a :class:`lm_core.Transformer` (needs ``tok_emb`` and ``inputs_embeds``).
        tokenizer: for string prompts and decoding; may be None with id prompts and explicit ids.
        tau: frontier threshold (cells with p >= tau are taken left to right in one step).
        stop_conf: a block ends when every cell has p >= stop_conf (or nothing changed).
        max_steps_per_block: safety bound on model calls per block (default 2 * block_length).
        soft: feed decoded cells back as soft embeddings (DMax); False feeds their hard top-1
            token instead (an ablation: hard self-correction with the same frontier and stops).
    """
    mask_id, eos_id, pad_id = _special_ids(tokenizer, mask_id, eos_id, pad_id)
    ids = encode_prompts(tokenizer, prompts)
    _check(gen_length, block_length, tau, stop_conf, max(map(len, ids)), model.cfg.max_seq_len)
    max_steps = max_steps_per_block or 2 * block_length
    device = next(model.parameters()).device
    prompt_x, valid = left_pad(ids, pad_id, device)
    B, P = prompt_x.shape
    x = torch.cat([prompt_x, prompt_x.new_full((B, gen_length), mask_id)], dim=1)
    valid = torch.cat([valid, valid.new_ones(B, gen_length)], dim=1)
    cond = attention_inputs(valid)
    emb = model.tok_emb(x)
    stats = GenerationStats(rows=B)
    live = torch.ones(B, dtype=torch.bool, device=device)
    t0 = time.perf_counter()
    for b in range(gen_length // block_length):
        cols = slice(P + b * block_length, P + (b + 1) * block_length)
        nfe = _decode_block(
            model, emb, x, cols, live, cond, mask_id=mask_id, tau=tau, stop_conf=stop_conf,
            max_steps=max_steps, soft=soft,
        )  # fmt: skip
        stats.nfe += int(nfe.max())
        stats.per_block_nfe.append(int(nfe.max()))
        stats.tokens += int(live.sum()) * block_length
        ended = (x[:, P : cols.stop] == eos_id).any(-1)
        newly = ended & live
        x[newly, cols.stop :] = eos_id
        emb[newly, cols.stop :] = model.tok_emb.weight[eos_id]
        live &= ~ended
        if not bool(live.any()):
            break
    stats.seconds = time.perf_counter() - t0
    stats.forward_passes = stats.nfe
    seq = x[:, P:]
    token_ids = _cut_at_eos(seq, eos_id)
    texts = None if tokenizer is None else [tokenizer.decode(t) for t in token_ids]
    return GenerationResult(texts=texts, token_ids=token_ids, sequences=seq, stats=stats)
