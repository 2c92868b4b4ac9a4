"""FlexAttention for packed and block-causal batches: masks as ``mask_mod`` functions.

A :class:`MaskSpec` describes who may attend to whom by small per-position id tensors (document
ids, block ids, valid keys) instead of a dense [B, Tq, Tk] boolean tensor. It gives both forms:
``mask_mod(b, h, q_idx, kv_idx) -> bool`` (FlexAttention's signature; it also works on
broadcastable index grids, which is how :meth:`MaskSpec.evaluate` and the tests read it) and
``dense()``, the mask SDPA takes (:mod:`lm_core.nn.masks`). :func:`block_mask` turns a mask_mod
into a ``BlockMask`` once per batch; :func:`flex` runs the kernel on it.

On CUDA the kernel is ``torch.compile(flex_attention)`` (fused, block-sparse: fully masked
128 x 128 tiles are skipped). On CPU this torch runs FlexAttention's forward only, unfused and
without autograd, so the CPU path is for inference and tests; training on CPU uses SDPA.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lm_core.nn.masks import block_causal_mask, dual_stream_mask

try:
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except Exception:  # noqa: BLE001 - a torch without FlexAttention: the dense path serves
    BlockMask = create_block_mask = flex_attention = None

MaskMod = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]

_compiled: dict[str, Callable] = {}


def flex_available() -> bool:
    """Whether this torch has ``torch.nn.attention.flex_attention``."""
    return flex_attention is not None


@dataclass(frozen=True)
class MaskSpec:
    """An attention mask given by ids: ``mask_mod`` for FlexAttention, ``dense()`` for SDPA.

    ``batch`` rows (None: the same for every row), ``q_len`` queries, ``kv_len`` keys."""

    batch: int | None
    q_len: int
    kv_len: int
    mask_mod: MaskMod
    dense_fn: Callable[[], Tensor]

    def dense(self) -> Tensor:
        """bool [B, Tq, Tk] (True = may attend): the dense mask this spec replaces."""
        return self.dense_fn()

    def evaluate(self, batch: int, device=None) -> Tensor:
        """bool [B, Tq, Tk]: ``mask_mod`` evaluated on index grids (no kernel, any device)."""
        b = torch.arange(batch, device=device)[:, None, None]
        q = torch.arange(self.q_len, device=device)[None, :, None]
        kv = torch.arange(self.kv_len, device=device)[None, None, :]
        out = self.mask_mod(b, torch.zeros_like(b), q, kv)
        return out.expand(batch, self.q_len, self.kv_len)


def and_mods(*mods: MaskMod | None) -> MaskMod | None:
    """The mask_mod that allows what every given mask_mod allows (None entries skipped)."""
    mods = tuple(m for m in mods if m is not None)
    if not mods:
        return None
    if len(mods) == 1:
        return mods[0]

    def mod(b, h, q, kv):
        out = mods[0](b, h, q, kv)
        for m in mods[1:]:
            out = out & m(b, h, q, kv)
        return out

    return mod


def document_mod(doc: Tensor) -> MaskMod:
    """Packed documents: ``doc`` [T] long document id per row; a query sees its own document."""
    return lambda b, h, q, kv: doc[q] == doc[kv]


def causal_mod(offset: int = 0) -> MaskMod:
    """Causal, aligned to the end when there are ``offset`` more keys than queries."""
    return lambda b, h, q, kv: q + offset >= kv


def tensor_mod(mask: Tensor) -> MaskMod:
    """A dense bool mask [B|1, 1|H, Tq|1, Tk] read as a mask_mod (size-1 dims broadcast)."""
    sb, sh, sq = (int(n > 1) for n in mask.shape[:3])
    return lambda b, h, q, kv: mask[b * sb, h * sh, q * sq, kv]


def block_causal_spec(blocks: Tensor) -> MaskSpec:
    """Block-causal self-attention: ``blocks`` [B, T] block ids; key block <= query block.
    Replaces :func:`lm_core.nn.masks.block_causal_mask` (blocks, blocks)."""
    B, T = blocks.shape

    def mod(b, h, q, kv):
        return blocks[b, kv] <= blocks[b, q]

    return MaskSpec(B, T, T, mod, lambda: block_causal_mask(blocks, blocks))


def dual_stream_spec(
    blocks: Tensor, docs: Tensor | None = None, valid: Tensor | None = None
) -> MaskSpec:
    """The BD3-LM training mask of ``[x_t, x_0]`` [B, 2T] (see
    :func:`lm_core.nn.masks.dual_stream_mask`, which ``dense()`` returns): ``blocks`` [B, T]
    block ids, ``docs`` [B, T] document ids, ``valid`` bool [B, T] real tokens."""
    B, T = blocks.shape

    def mod(b, h, q, kv):
        q_noisy, kv_noisy = q < T, kv < T
        qi, ki = q % T, kv % T
        bq, bk = blocks[b, qi], blocks[b, ki]
        allowed = torch.where(
            q_noisy,
            torch.where(kv_noisy, bk == bq, bk < bq),
            ~kv_noisy & (bk <= bq),
        )
        if docs is not None:
            allowed = allowed & (docs[b, qi] == docs[b, ki])
        if valid is not None:
            allowed = allowed & valid[b, ki]
        return allowed | (q == kv)

    return MaskSpec(B, 2 * T, 2 * T, mod, lambda: dual_stream_mask(blocks, docs, valid))


def block_mask(mod: MaskMod, batch: int | None, q_len: int, kv_len: int, device):
    """The ``BlockMask`` of ``mod`` for [batch or 1, heads broadcast, q_len, kv_len]: built once
    per batch, shared by every layer."""
    return create_block_mask(mod, batch, None, q_len, kv_len, device=device)


def flex(q: Tensor, k: Tensor, v: Tensor, mask) -> Tensor:
    """FlexAttention: q [B, T, H, D], k/v [B, S, Hkv, D], ``mask`` a BlockMask -> [B, T, H, D].
    Compiled (fused) on CUDA; eager (unfused, forward only) elsewhere."""
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    gqa = k.shape[2] != q.shape[2]
    if q.is_cuda:
        if "cuda" not in _compiled:
            _compiled["cuda"] = torch.compile(flex_attention, dynamic=False)
        out = _compiled["cuda"](qt, kt, vt, block_mask=mask, enable_gqa=gqa)
    else:
        with warnings.catch_warnings():  # unfused off CUDA is the point here: no compiler needed
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            out = flex_attention(qt, kt, vt, block_mask=mask, enable_gqa=gqa)
    return out.transpose(1, 2)
