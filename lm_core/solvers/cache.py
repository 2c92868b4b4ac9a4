"""Block-wise denoiser calls with a key/value cache (Fast-dLLM prefix and dual cache).

The sampler loops fill a canvas [B, L] block by block; every step needs logits of the active
block's columns ``lo:hi`` only. :class:`BlockForward` returns exactly those, [B, hi - lo, V],
and spends as little as the cache ``mode`` allows:

- ``none``: the whole canvas through the model at every step (logits of the block only).
- ``prefix``: the first step of a block runs the whole canvas and keeps every layer's keys and
  values (RoPE applied) of the columns before the block; later steps run columns ``lo:`` (the
  block and everything after it) against that prefix.
- ``dual``: the first step keeps the keys and values of the columns before *and after* the block;
  later steps run only the block's columns, attending to both caches (through the Transformer's
  ``kv_prefix`` hook: attention does not care in which order keys come, RoPE rides on them).

For a bidirectional model both caches are approximations (the cached columns would have seen the
block's new tokens), refreshed at every block. For a **block-causal** model
(``cfg.block_causal`` = N) they are exact: the prompt is one attention block, the generated
columns are blocks of N (the sampler's block must be a multiple of N), no column sees a later
block, so a finished block's keys and values never change. The cache then grows block by block
(the finished columns run once, against the cache before them) and ``prefix`` equals ``dual``.

Pad cells of left-padded prompts are hidden keys (``valid``), with the positions
:func:`lm_core.text.prompts.attention_inputs` gives, so a row computes what it would alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lm_core.nn.attention import block_causal_mask

CACHE_MODES = ("none", "prefix", "dual")


def check_cache_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`CACHE_MODES`, else ValueError naming ``cache``."""
    if mode not in CACHE_MODES:
        raise ValueError(f"cache: expected one of {CACHE_MODES}, got {mode!r}")
    return mode


def canvas_blocks(L: int, prompt_len: int, block: int, device) -> Tensor:
    """Attention block id of each canvas column [L]: the prompt 0, then 1, 2, ... per ``block``
    generated columns."""
    col = torch.arange(L, device=device)
    return torch.where(col < prompt_len, 0, 1 + (col - prompt_len).clamp(min=0) // block)


def canvas_mask(valid: Tensor, blocks: Tensor | None) -> Tensor | None:
    """bool [B, L, L] visibility of a canvas: real keys only (a pad query sees itself), and
    ``blocks`` [L] block-causal when given; None when everything sees everything."""
    B, L = valid.shape
    if blocks is None and bool(valid.all()):
        return None
    eye = torch.eye(L, dtype=torch.bool, device=valid.device)
    mask = valid[:, None, :] | eye[None]
    if blocks is not None:
        mask = mask & block_causal_mask(blocks[None], blocks[None])
    return mask


class BlockForward:
    """``f(inp, lo, hi, first, rows=None) -> logits [b, hi - lo, V]`` for the sampler loops.

    Args:
        model: a :class:`lm_core.Transformer` (``return_kv``, ``kv_prefix``, ``return_hidden``).
        mode: ``none``, ``prefix`` or ``dual`` (see the module docstring).
        valid: bool [B, L] real cells of the canvas (False at left padding).
        prompt_len: canvas columns before the first generated one (block 0 when block-causal).
        block_length: the sampler's block (a multiple of ``cfg.block_causal`` when set).

    ``inp`` is the canvas, ids [b, L] or embeddings [b, L, d] (DMax); ``rows`` (long [b]) picks
    the batch rows it holds (default all B). ``first`` marks a block's first step: the cache of
    a bidirectional model is refreshed there. ``passes`` counts model runs, ``cached_columns``
    the columns whose keys were reused.
    """

    #: the sampler loop calls it with the active block's columns and gets their logits only
    windowed = True

    def __init__(self, model, mode: str, *, valid: Tensor, prompt_len: int, block_length: int):
        self.model, self.mode = model, check_cache_mode(mode)
        if model.cfg.causal:
            raise ValueError("cache: generation needs a bidirectional or block-causal model")
        n = model.cfg.block_causal
        if n and block_length % n:
            raise ValueError(
                f"block_length={block_length} must be a multiple of the model's "
                f"block_causal={n} (its attention blocks)"
            )
        self.valid = valid
        self.blocks = canvas_blocks(valid.shape[1], prompt_len, n, valid.device) if n else None
        self.mask = canvas_mask(valid, self.blocks)
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
        self.positions = positions
        self.kv: list[tuple[Tensor, Tensor]] | None = None
        self.done = 0  # block-causal: columns 0:done hold exact keys and values
        self.passes = 0

    # ---------------------------------------------------------------- helpers
    def _mask(self, rows, q: slice, keys: Tensor | slice) -> Tensor | None:
        if self.mask is None:
            return None
        m = self.mask[rows][:, q]
        return m[..., keys]

    def _run(self, inp, rows, cols: slice, keys, kv_prefix, want_kv: bool):
        """Model on canvas columns ``cols`` of ``inp`` (rows ``rows``) -> (hidden, kvs)."""
        self.passes += 1
        x = inp[:, cols]
        kw = {"inputs_embeds": x} if x.dim() == 3 else {"input_ids": x}
        out = self.model(
            **kw, positions=self.positions[rows][:, cols], attn_mask=self._mask(rows, cols, keys),
            kv_prefix=kv_prefix, return_hidden=True, return_kv=want_kv,
        )  # fmt: skip
        return out if want_kv else (out, None)

    def _store(self, rows, cols: slice, kvs) -> None:
        B, L = self.valid.shape
        if self.kv is None:
            self.kv = [
                tuple(t.new_zeros(B, L, *t.shape[2:]) for t in kv) for kv in kvs
            ]  # fmt: skip
        for (k_all, v_all), (k, v) in zip(self.kv, kvs, strict=True):
            k_all[rows, cols] = k
            v_all[rows, cols] = v

    def _prefix(self, rows, lo: int, hi: int | None = None):
        """Cached (k, v) of columns 0:lo (and hi: when given) per layer, rows ``rows``."""
        if self.kv is None or (lo == 0 and hi is None):
            return None
        out = []
        for k, v in self.kv:
            k, v = k[rows], v[rows]
            if hi is None:
                out.append((k[:, :lo], v[:, :lo]))
            else:
                out.append(
                    (torch.cat([k[:, :lo], k[:, hi:]], 1), torch.cat([v[:, :lo], v[:, hi:]], 1))
                )
        return out

    # ---------------------------------------------------------------- call
    def __call__(self, inp: Tensor, lo: int, hi: int, first: bool, rows: Tensor | None = None):
        rows = torch.arange(inp.shape[0], device=inp.device) if rows is None else rows
        L = inp.shape[1]
        if self.mode == "none":
            h, _ = self._run(inp, rows, slice(0, L), slice(0, L), None, False)
            return self.model.output_logits(h[:, lo:hi])
        if self.blocks is not None:
            return self._block_causal(inp, rows, lo, hi)
        if first:
            h, kvs = self._run(inp, rows, slice(0, L), slice(0, L), None, True)
            self._store(rows, slice(0, L), kvs)
            return self.model.output_logits(h[:, lo:hi])
        if self.mode == "prefix":
            keys = slice(0, L)
            h, _ = self._run(inp, rows, slice(lo, L), keys, self._prefix(rows, lo), False)
            return self.model.output_logits(h[:, : hi - lo])
        dev = inp.device
        keys = torch.cat([torch.arange(lo, device=dev), torch.arange(hi, L, device=dev),
                          torch.arange(lo, hi, device=dev)])  # fmt: skip
        h, _ = self._run(inp, rows, slice(lo, hi), keys, self._prefix(rows, lo, hi), False)
        return self.model.output_logits(h)

    def _block_causal(self, inp, rows, lo: int, hi: int) -> Tensor:
        """Exact cache: finished columns done:lo run once against 0:done, then the block."""
        if self.done < lo:
            c = self.done
            _, kvs = self._run(inp, rows, slice(c, lo), slice(0, lo), self._prefix(rows, c), True)
            self._store(rows, slice(c, lo), kvs)
            self.done = lo
        h, _ = self._run(inp, rows, slice(lo, hi), slice(0, hi), self._prefix(rows, lo), False)
        return self.model.output_logits(h)
