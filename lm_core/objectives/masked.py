"""Training objectives on the Transformer denoiser.

All losses take the model and a batch and return ``(loss, stats)`` where ``stats`` holds detached
scalars worth logging. Time convention: see :mod:`lm_core.corruption`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_core.corruption import mask_probability, mask_tokens, sample_t
from lm_core.nn.attention import document_ids


def _per_row_t(input_ids: Tensor, cu_seqlens: Tensor | None, stratified: bool, generator):
    """A noise level per sequence: [B, 1] for a padded batch, [1, T] (one t per document) if packed."""
    B, T = input_ids.shape
    if cu_seqlens is None:
        return sample_t(B, stratified=stratified, device=input_ids.device, generator=generator)[
            :, None
        ]
    n_docs = cu_seqlens.numel() - 1
    t_doc = sample_t(n_docs, stratified=stratified, device=input_ids.device, generator=generator)
    return t_doc[document_ids(cu_seqlens.to(input_ids.device), T)][None]


def masked_diffusion_loss(
    model,
    input_ids: Tensor,
    *,
    mask_id: int,
    maskable: Tensor | None = None,
    cu_seqlens: Tensor | None = None,
    attn_mask: Tensor | None = None,
    eps: float = 1e-3,
    stratified: bool = False,
    normalise: str = "tokens",
    t: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict]:
    """Masked-diffusion ELBO (LLaDA): sum over masked tokens of CE / p, over the token count.

    Args:
        input_ids: [B, T] clean tokens (B = 1 and ``cu_seqlens`` for a packed batch).
        maskable: bool [B, T]; which tokens may be masked and count in the denominator
            (padding and SFT prompts are excluded). Default: all.
        normalise: ``tokens`` divides by the number of maskable tokens (the pre-training ELBO);
            ``answer`` divides each sequence's sum by its own maskable length, then averages over
            sequences (LLaDA's SFT normalisation).
        t: optional noise levels broadcastable to [B, T]; drawn per sequence/document if None.

    Returns:
        loss (scalar) and stats {"masked_frac", "ce_masked"}.
    """
    if maskable is None:
        maskable = torch.ones_like(input_ids, dtype=torch.bool)
    if t is None:
        t = _per_row_t(input_ids, cu_seqlens, stratified, generator)
    p = mask_probability(t, eps).expand_as(input_ids)
    x_t, masked = mask_tokens(input_ids, p, mask_id, maskable=maskable, generator=generator)
    logits = model(x_t, cu_seqlens=cu_seqlens, attn_mask=attn_mask)
    ce = torch.zeros_like(p, dtype=torch.float32)
    if masked.any():
        ce[masked] = F.cross_entropy(logits[masked].float(), input_ids[masked], reduction="none")
    weighted = ce / p.float()
    if normalise == "answer":
        lengths = maskable.sum(-1).clamp(min=1)
        loss = (weighted.sum(-1) / lengths).mean()
    elif normalise == "tokens":
        loss = weighted.sum() / maskable.sum().clamp(min=1)
    else:
        raise ValueError(f"normalise: expected 'tokens' or 'answer', got {normalise!r}")
    if not masked.any():  # nothing masked (tiny batch, small t): keep the graph for backward/DDP
        loss = loss + 0.0 * logits.sum()
    n_masked = masked.sum().clamp(min=1)
    stats = {
        "masked_frac": (masked.sum() / maskable.sum().clamp(min=1)).detach(),
        "ce_masked": (ce.sum() / n_masked).detach(),
    }
    return loss, stats


def causal_lm_loss(
    model,
    input_ids: Tensor,
    *,
    cu_seqlens: Tensor | None = None,
    attn_mask: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, dict]:
    """Next-token cross-entropy for the autoregressive baseline (model must have causal=True).

    Predictions never cross packed-document boundaries. ``valid`` bool [B, T] marks real tokens.
    Returns the mean CE per predicted token (nats) and stats {"ppl"}.
    """
    if not model.cfg.causal:
        raise ValueError("causal_lm_loss needs a model with causal=True")
    logits = model(input_ids, cu_seqlens=cu_seqlens, attn_mask=attn_mask)
    target_ok = torch.ones_like(input_ids, dtype=torch.bool)[:, 1:]
    if cu_seqlens is not None:
        doc = document_ids(cu_seqlens.to(input_ids.device), input_ids.shape[1])
        target_ok = target_ok & (doc[1:] == doc[:-1])[None]
    if valid is not None:
        target_ok = target_ok & valid[:, 1:] & valid[:, :-1]
    ce = F.cross_entropy(
        logits[:, :-1][target_ok].float(), input_ids[:, 1:][target_ok], reduction="mean"
    )
    return ce, {"ppl": ce.detach().exp()}
