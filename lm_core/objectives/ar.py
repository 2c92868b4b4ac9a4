"""The autoregressive baseline's objective: next-token cross-entropy (registry kind ``ar``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_core.config import ObjectiveConfig
from lm_core.nn.attention import document_ids
from lm_core.objectives.masked import batch_masks


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


def ar_objective(
    model, batch: dict, cfg: ObjectiveConfig, generator=None, mask_id: int | None = None
) -> tuple[Tensor, dict]:
    """Registry entry ``ar``: :func:`causal_lm_loss` on a packed or padded batch (no noise)."""
    cu, valid, attn_mask = batch_masks(batch)
    return causal_lm_loss(
        model, batch["input_ids"], cu_seqlens=cu, attn_mask=attn_mask, valid=valid
    )
