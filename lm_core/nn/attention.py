"""Attention with run-time backend choice.

Backends, in the order ``auto`` tries them:

1. ``flash``: flash-attn's ``flash_attn_varlen_func`` (installed with the ``gpu`` extra, CUDA only).
2. ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` (CUDA only).
3. ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` with an explicit boolean mask
   (block-diagonal for packed documents), which works everywhere, including CPU training.

Shapes: q [B, T, H, D]; k, v [B, S, Hkv, D] with H % Hkv == 0; output [B, T, H, D].
Packed documents: B == 1 and ``cu_seqlens`` int32 [N + 1] (document i is rows cu[i]:cu[i+1]).

Block-causal masks (BD3-LM, Fast-dLLM v2, LLaDA 2): a query sees every key of its own block and
of earlier blocks, nothing later (:func:`block_causal_mask`); training feeds the noisy and the
clean sequence side by side (:func:`dual_stream_mask`) so a noisy block sees the clean blocks
before it, as it does when sampling with a cache.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import Tensor

try:  # optional GPU kernel; any failure (missing CUDA libs, ABI mismatch) falls back to torch
    from flash_attn import flash_attn_varlen_func as _flash_varlen
except Exception:  # noqa: BLE001
    _flash_varlen = None

try:
    from torch.nn.attention.varlen import varlen_attn as _torch_varlen
except Exception:  # noqa: BLE001
    _torch_varlen = None

BACKENDS = ("flash", "varlen", "sdpa")


def available_backends(device: torch.device | str) -> list[str]:
    """Backends usable for tensors on ``device`` (varlen kernels need CUDA)."""
    device = torch.device(device)
    out = []
    if device.type == "cuda":
        if _flash_varlen is not None:
            out.append("flash")
        if _torch_varlen is not None:
            out.append("varlen")
    out.append("sdpa")
    return out


def packed_mask(cu_seqlens: Tensor, total: int, causal: bool = False) -> Tensor:
    """Block-diagonal boolean mask [total, total] (True = may attend) from ``cu_seqlens``."""
    doc = document_ids(cu_seqlens, total)
    mask = doc[:, None] == doc[None, :]
    if causal:
        mask = mask & torch.ones(total, total, dtype=torch.bool, device=doc.device).tril()
    return mask


def document_ids(cu_seqlens: Tensor, total: int) -> Tensor:
    """Index of the document each packed row belongs to: [total] long."""
    idx = torch.arange(total, device=cu_seqlens.device)
    return torch.searchsorted(cu_seqlens[1:].long(), idx, right=True)


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


def _sdpa(q, k, v, causal, cu_seqlens, attn_mask):
    B, T, H, D = q.shape
    S, Hkv = k.shape[1], k.shape[2]
    mask = None
    if cu_seqlens is not None:
        mask = packed_mask(cu_seqlens, T, causal)[None, None]
        causal = False
    if attn_mask is not None:
        am = attn_mask if attn_mask.dim() == 4 else attn_mask[:, None]
        mask = am if mask is None else (mask & am)
    if mask is not None and causal:
        mask = mask & torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
        causal = False
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if Hkv != H:
        rep = H // Hkv
        kt = kt.repeat_interleave(rep, dim=1)
        vt = vt.repeat_interleave(rep, dim=1)
    out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, is_causal=causal)
    return out.transpose(1, 2)


def _varlen_args(q, cu_seqlens):
    B, T = q.shape[:2]
    if cu_seqlens is None:
        cu = torch.arange(0, (B + 1) * T, T, device=q.device, dtype=torch.int32)
        max_len = T
    else:
        cu = cu_seqlens.to(device=q.device, dtype=torch.int32)
        max_len = int((cu[1:] - cu[:-1]).max())
    return cu, max_len


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    cu_seqlens: Tensor | None = None,
    attn_mask: Tensor | None = None,
    backend: str = "auto",
) -> Tensor:
    """Multi-head (grouped-query) attention.

    Args:
        q: [B, T, H, D]; k, v: [B, S, Hkv, D].
        causal: causal masking (aligned to the end when S > T).
        cu_seqlens: int32 [N + 1] document boundaries of a packed batch (B must be 1).
        attn_mask: bool [B, T, S] or [B, 1|H, T, S]; True = may attend. Forces SDPA.
        backend: ``auto`` or one of ``flash``, ``varlen``, ``sdpa``.

    Returns:
        [B, T, H, D].
    """
    if cu_seqlens is not None and q.shape[0] != 1:
        raise ValueError(f"cu_seqlens needs a packed batch of size 1, got batch size {q.shape[0]}")
    if backend == "auto":
        usable = available_backends(q.device)
        backend = usable[0]
        if attn_mask is not None or k.shape[1] != q.shape[1]:
            backend = "sdpa"
    elif backend not in available_backends(q.device):
        raise ValueError(
            f"attn_backend={backend!r} is not usable on {q.device}; "
            f"usable: {available_backends(q.device)}"
        )
    if backend == "sdpa" or q.dtype not in (torch.float16, torch.bfloat16):
        return _sdpa(q, k, v, causal, cu_seqlens, attn_mask)
    B, T, H, D = q.shape
    cu, max_len = _varlen_args(q, cu_seqlens)
    qf, kf, vf = (x.reshape(B * T, x.shape[2], D) for x in (q, k, v))
    if backend == "flash":
        out = _flash_varlen(qf, kf, vf, cu, cu, max_len, max_len, causal=causal)
    else:
        out = _call_torch_varlen(qf, kf, vf, cu, max_len, causal)
    return out.reshape(B, T, H, D)


def _call_torch_varlen(qf, kf, vf, cu, max_len, causal):
    """``varlen_attn`` across torch versions: ``enable_gqa`` / ``window_size`` (2.13) or
    ``is_causal`` and equal head counts (older)."""
    params = inspect.signature(_torch_varlen).parameters
    kw = {}
    if kf.shape[1] != qf.shape[1]:
        if "enable_gqa" in params:
            kw["enable_gqa"] = True
        else:
            rep = qf.shape[1] // kf.shape[1]
            kf, vf = kf.repeat_interleave(rep, dim=1), vf.repeat_interleave(rep, dim=1)
    if "window_size" in params:
        kw["window_size"] = (-1, 0) if causal else (-1, -1)
    elif "is_causal" in params:
        kw["is_causal"] = causal
    elif causal:
        raise ValueError("this torch's varlen_attn has no causal mode; use attn_backend=sdpa")
    return _torch_varlen(qf, kf, vf, cu, cu, max_len, max_len, **kw)
