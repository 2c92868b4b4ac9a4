"""Dense boolean attention masks (True = may attend), the form SDPA takes.

The same layouts as FlexAttention ``mask_mod`` functions live in :mod:`lm_core.nn.flex`; tests
check that each mask_mod equals the dense mask here.

Block-causal masks (BD3-LM, Fast-dLLM v2, LLaDA 2): a query sees every key of its own block and
of earlier blocks, nothing later (:func:`block_causal_mask`); training feeds the noisy and the
clean sequence side by side (:func:`dual_stream_mask`) so a noisy block sees the clean blocks
before it, as it does when sampling with a cache.
"""

from __future__ import annotations

import torch
from torch import Tensor


def document_ids(cu_seqlens: Tensor, total: int) -> Tensor:
    """Index of the document each packed row belongs to: [total] long."""
    idx = torch.arange(total, device=cu_seqlens.device)
    return torch.searchsorted(cu_seqlens[1:].long(), idx, right=True)


def packed_mask(cu_seqlens: Tensor, total: int, causal: bool = False) -> Tensor:
    """Block-diagonal boolean mask [total, total] (True = may attend) from ``cu_seqlens``."""
    doc = document_ids(cu_seqlens, total)
    mask = doc[:, None] == doc[None, :]
    if causal:
        mask = mask & torch.ones(total, total, dtype=torch.bool, device=doc.device).tril()
    return mask


def block_causal_mask(block_q: Tensor, block_k: Tensor) -> Tensor:
    """bool [B, Tq, Tk], True where key block <= query block; block ids [B, Tq] and [B, Tk]."""
    return block_k[:, None, :] <= block_q[:, :, None]


def dual_stream_mask(blocks: Tensor, docs: Tensor | None = None, valid: Tensor | None = None):
    """Mask of the block-diffusion training input ``[x_t, x_0]`` (BD3-LM): bool [B, 2T, 2T].

    Noisy query -> noisy keys of its own block and clean keys of earlier blocks; clean query ->
    clean keys of its own and earlier blocks (never noisy ones). ``blocks`` [B, T] block ids,
    ``docs`` [B, T] document ids of a packed row (attention never crosses documents), ``valid``
    bool [B, T] real tokens (pad keys are hidden; every query still sees itself).
    """
    B, T = blocks.shape
    same = torch.ones(B, T, T, dtype=torch.bool, device=blocks.device)
    if docs is not None:
        same = docs[:, :, None] == docs[:, None, :]
    bq, bk = blocks[:, :, None], blocks[:, None, :]
    top = torch.cat([same & (bk == bq), same & (bk < bq)], dim=2)
    bottom = torch.cat([torch.zeros_like(same), same & (bk <= bq)], dim=2)
    mask = torch.cat([top, bottom], dim=1)
    if valid is not None:
        mask = mask & torch.cat([valid, valid], dim=1)[:, None, :]
    return mask | torch.eye(2 * T, dtype=torch.bool, device=blocks.device)
