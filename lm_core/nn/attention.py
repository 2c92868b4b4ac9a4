"""Attention with run-time backend choice, planned once per batch.

Backends (``model.attn_backend``):

- ``flash``: flash-attn's ``flash_attn_varlen_func`` (installed with the ``gpu`` extra, CUDA only).
- ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` (CUDA only).
- ``flex``: ``torch.nn.attention.flex_attention`` on a ``BlockMask`` (:mod:`lm_core.nn.flex`):
  packed documents, block-causal and dual-stream masks without a dense [B, 1, T, S] mask, and
  tiles that are fully masked skipped. Compiled on CUDA; on CPU forward only (no backward in this
  torch), so training on CPU with ``flex`` stops with one line.
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` with an explicit boolean mask
  (block-diagonal for packed documents), which works everywhere, including CPU training.

``auto`` picks, per batch: flash, then varlen, for unmasked or packed fp16/bf16 batches on CUDA;
flex on CUDA for packed or block-causal batches the varlen kernels cannot serve (fp32, an extra
mask, a :class:`~lm_core.nn.flex.MaskSpec`); sdpa otherwise (CPU; any dense mask tensor; a key /
value prefix). ``flash`` / ``varlen`` named explicitly serve what they can and hand masked or
prefixed batches to sdpa.

:func:`plan_attention` does all per-batch work once (document ids, the BlockMask or dense mask,
the longest document as a Python int, the one host sync the varlen kernels need); each layer
then calls :func:`attention` with the plan and syncs nothing.

Shapes: q [B, T, H, D]; k, v [B, S, Hkv, D] with H % Hkv == 0; output [B, T, H, D].
Packed documents: B == 1 and ``cu_seqlens`` int32 [N + 1] (document i is rows cu[i]:cu[i+1]).
Dense mask builders (block-causal, dual-stream, packed): :mod:`lm_core.nn.masks`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_core.nn.flex import (
    MaskSpec,
    and_mods,
    block_mask,
    causal_mod,
    document_mod,
    flex,
    flex_available,
    tensor_mod,
)
from lm_core.nn.masks import (  # noqa: F401 - re-exported: the masks' historical home
    block_causal_mask,
    document_ids,
    dual_stream_mask,
    packed_mask,
)

try:  # optional GPU kernel; any failure (missing CUDA libs, ABI mismatch) falls back to torch
    from flash_attn import flash_attn_varlen_func as _flash_varlen
except Exception:  # noqa: BLE001
    _flash_varlen = None

try:
    from torch.nn.attention.varlen import varlen_attn as _torch_varlen
except Exception:  # noqa: BLE001
    _torch_varlen = None

BACKENDS = ("flash", "varlen", "flex", "sdpa")
_HALF = (torch.float16, torch.bfloat16)


def available_backends(device: torch.device | str) -> list[str]:
    """Backends usable for tensors on ``device`` (varlen kernels need CUDA; flex runs forward-only
    off CUDA)."""
    device = torch.device(device)
    out = []
    if device.type == "cuda":
        if _flash_varlen is not None:
            out.append("flash")
        if _torch_varlen is not None:
            out.append("varlen")
    if flex_available():
        out.append("flex")
    out.append("sdpa")
    return out


@dataclass(frozen=True)
class AttentionPlan:
    """What every layer of one forward needs, computed once per batch.

    ``backend`` is resolved (flash, varlen, flex or sdpa). flash/varlen: ``cu`` int32 [N + 1] on
    the device and ``max_len`` (Python int). flex: ``block_mask``. sdpa: ``mask`` bool
    [B|1, 1|H, T, S] or None, and ``is_causal``. ``cu_seqlens`` / ``attn_mask`` are kept for the
    sdpa fallback of a varlen plan whose inputs turn out fp32."""

    backend: str
    causal: bool
    cu: Tensor | None = None
    max_len: int = 0
    block_mask: object | None = None
    mask: Tensor | None = None
    is_causal: bool = False
    cu_seqlens: Tensor | None = None
    attn_mask: Tensor | None = None


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype the projections of ``x`` will have (the autocast dtype when autocast is on)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def plan_attention(
    *,
    batch: int,
    q_len: int,
    kv_len: int,
    device,
    dtype: torch.dtype,
    causal: bool = False,
    cu_seqlens: Tensor | None = None,
    attn_mask: Tensor | MaskSpec | None = None,
    backend: str = "auto",
) -> AttentionPlan:
    """Choose the backend and build its masks for a batch of ``batch`` rows, ``q_len`` queries
    and ``kv_len`` keys (> q_len with a key/value prefix). ``attn_mask``: bool [B, T, S] or
    [B, 1|H, T, S] (True = may attend), or a :class:`~lm_core.nn.flex.MaskSpec`."""
    device = torch.device(device)
    if cu_seqlens is not None and batch != 1:
        raise ValueError(f"cu_seqlens needs a packed batch of size 1, got batch size {batch}")
    usable = available_backends(device)
    if backend != "auto" and backend not in usable:
        raise ValueError(f"attn_backend={backend!r} is not usable on {device}; usable: {usable}")
    spec = attn_mask if isinstance(attn_mask, MaskSpec) else None
    dense = attn_mask if isinstance(attn_mask, Tensor) else None
    if dense is not None and dense.dim() == 3:
        dense = dense[:, None]
    prefix = kv_len != q_len
    kernel_ok = attn_mask is None and not prefix and dtype in _HALF
    structured = (cu_seqlens is not None or spec is not None) and not prefix
    chosen = backend
    if backend == "auto":
        kernels = [b for b in usable if b in ("flash", "varlen")]
        if kernel_ok and kernels:
            chosen = kernels[0]
        elif structured and "flex" in usable and device.type == "cuda":
            chosen = "flex"
        else:
            chosen = "sdpa"
    elif backend in ("flash", "varlen") and not kernel_ok:
        chosen = "sdpa"
    if chosen == "flex" and device.type != "cuda" and torch.is_grad_enabled():
        raise ValueError(
            f"model.attn_backend=flex: FlexAttention has no backward on {device.type} in torch "
            f"{torch.__version__}; train on CPU with attn_backend auto or sdpa (flex runs there "
            "under torch.no_grad only)"
        )
    if chosen in ("flash", "varlen"):
        if cu_seqlens is None:
            cu = torch.arange(0, (batch + 1) * q_len, q_len, device=device, dtype=torch.int32)
            max_len = q_len
        else:
            cu = cu_seqlens.to(device=device, dtype=torch.int32)
            max_len = int((cu[1:] - cu[:-1]).max())  # the one host sync, once per batch
        return AttentionPlan(chosen, causal, cu=cu, max_len=max_len, cu_seqlens=cu, attn_mask=dense)
    if chosen == "flex":
        cu = None if cu_seqlens is None else cu_seqlens.to(device)
        mod = and_mods(
            None if cu is None else document_mod(document_ids(cu, q_len)),
            causal_mod(kv_len - q_len) if causal else None,
            None if spec is None else spec.mask_mod,
            None if dense is None else tensor_mod(dense),
        )
        rows = spec.batch if spec is not None else None
        if dense is not None and dense.shape[0] > 1:
            rows = dense.shape[0]
        if mod is None:
            mod = causal_mod(0) if causal else (lambda b, h, q, kv: q >= 0)
        return AttentionPlan(
            "flex", causal, block_mask=block_mask(mod, rows, q_len, kv_len, device)
        )
    if spec is not None:
        dense = spec.dense()[:, None] if dense is None else dense & spec.dense()[:, None]
    mask, is_causal = _dense_mask(q_len, kv_len, device, causal, cu_seqlens, dense)
    return AttentionPlan("sdpa", causal, mask=mask, is_causal=is_causal)


def _dense_mask(T, S, device, causal, cu_seqlens, dense):
    """(bool mask [B|1, 1|H, T, S] or None, is_causal for SDPA) of the given parts."""
    mask = None
    if cu_seqlens is not None:
        mask = packed_mask(cu_seqlens.to(device), T, causal)[None, None]
        causal = False
    if dense is not None:
        mask = dense if mask is None else (mask & dense)
    if causal and (mask is not None or S != T):
        tril = torch.ones(T, S, dtype=torch.bool, device=device).tril(S - T)
        mask = tril if mask is None else mask & tril
        causal = False
    return mask, causal


def _sdpa(q, k, v, mask, is_causal):
    H, Hkv = q.shape[2], k.shape[2]
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if Hkv != H:
        rep = H // Hkv
        kt = kt.repeat_interleave(rep, dim=1)
        vt = vt.repeat_interleave(rep, dim=1)
    out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, is_causal=is_causal)
    return out.transpose(1, 2)


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    cu_seqlens: Tensor | None = None,
    attn_mask: Tensor | MaskSpec | None = None,
    backend: str = "auto",
    plan: AttentionPlan | None = None,
) -> Tensor:
    """Multi-head (grouped-query) attention.

    Args:
        q: [B, T, H, D]; k, v: [B, S, Hkv, D].
        causal: causal masking (aligned to the end when S > T).
        cu_seqlens: int32 [N + 1] document boundaries of a packed batch (B must be 1).
        attn_mask: bool [B, T, S] or [B, 1|H, T, S] (True = may attend), or a MaskSpec.
        backend: ``auto`` or one of ``flash``, ``varlen``, ``flex``, ``sdpa``.
        plan: the batch's :func:`plan_attention` (a model's layers share one); when given,
            ``causal``, ``cu_seqlens``, ``attn_mask`` and ``backend`` are ignored.

    Returns:
        [B, T, H, D].
    """
    if plan is None:
        plan = plan_attention(
            batch=q.shape[0], q_len=q.shape[1], kv_len=k.shape[1], device=q.device,
            dtype=q.dtype, causal=causal, cu_seqlens=cu_seqlens, attn_mask=attn_mask,
            backend=backend,
        )  # fmt: skip
    if plan.backend == "flex":
        return flex(q, k, v, plan.block_mask)
    if plan.backend == "sdpa":
        return _sdpa(q, k, v, plan.mask, plan.is_causal)
    B, T, H, D = q.shape
    if q.dtype not in _HALF:  # the plan guessed the dtype wrong: dense fallback, no host sync
        mask, is_causal = _dense_mask(T, T, q.device, plan.causal, plan.cu_seqlens, None)
        return _sdpa(q, k, v, mask, is_causal)
    qf, kf, vf = (x.reshape(B * T, x.shape[2], D) for x in (q, k, v))
    if plan.backend == "flash":
        out = _flash_varlen(qf, kf, vf, plan.cu, plan.cu, plan.max_len, plan.max_len,
                            causal=plan.causal)  # fmt: skip
    else:
        out = _call_torch_varlen(qf, kf, vf, plan.cu, plan.max_len, plan.causal)
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
