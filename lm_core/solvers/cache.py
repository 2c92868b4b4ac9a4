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
(the finished columns run once, in the same pass as the next block's first step) and ``prefix``
equals ``dual``.

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
        self.padded = not bool(valid.all())
        self._joined = None
        self.passes = 0

    # ---------------------------------------------------------------- helpers
    def _mask(self, rows, q: slice, keys: Tensor | slice) -> Tensor | None:
        if self.mask is None:
            return None
        m = self.mask[rows, q]
        return m[..., keys]

    def _run(self, inp, rows, cols: slice, keys, kv_prefix, want_kv: bool, mask=True):
        """Model on canvas columns ``cols`` of ``inp`` (rows ``rows``) -> (hidden, kvs).
        ``mask=False``: every query sees every key (no mask to build)."""
        self.passes += 1
        x = inp[:, cols]
        kw = {"inputs_embeds": x} if x.dim() == 3 else {"input_ids": x}
        out = self.model(
            **kw, positions=self.positions[rows, cols],
            attn_mask=self._mask(rows, cols, keys) if mask else None,
            kv_prefix=kv_prefix, return_hidden=True, return_kv=want_kv,
        )  # fmt: skip
        return out if want_kv else (out, None)

    def _store(self, rows, cols: slice, kvs) -> None:
        B, L = self.valid.shape
        if self.kv is None:
            self.kv = [
                tuple(t.new_zeros(B, L, *t.shape[2:]) for t in kv) for kv in kvs
            ]  # fmt: skip
        n = cols.stop - cols.start
        for (k_all, v_all), (k, v) in zip(self.kv, kvs, strict=True):
            k_all[rows, cols] = k[:, :n]
            v_all[rows, cols] = v[:, :n]

    def _prefix(self, rows, lo: int):
        """Cached (k, v) [b, lo, Hkv, D] of columns 0:lo per layer (views for all rows)."""
        if self.kv is None or lo == 0:
            return None
        return [(k[rows, :lo], v[rows, :lo]) for k, v in self.kv]

    def _outside(self, rows, lo: int, hi: int):
        """Cached (k, v) of columns 0:lo and hi: per layer, joined once per block and rows."""
        key = (lo, hi, None if isinstance(rows, slice) else tuple(rows.tolist()))
        if self._joined is None or self._joined[0] != key:
            self._joined = (key, [
                (torch.cat([k[rows, :lo], k[rows, hi:]], 1), torch.cat([v[rows, :lo], v[rows, hi:]], 1))
                for k, v in self.kv
            ])  # fmt: skip
        return self._joined[1]

    # ---------------------------------------------------------------- call
    def __call__(self, inp: Tensor, lo: int, hi: int, first: bool, rows: Tensor | None = None):
        B, L = self.valid.shape
        if rows is None or (rows.numel() == B and bool((rows == torch.arange(B)).all())):
            rows = slice(None)  # views, not copies, of the cache
        if self.mode == "none":
            h, _ = self._run(inp, rows, slice(0, L), slice(0, L), None, False)
            return self.model.output_logits(h[:, lo:hi])
        if self.blocks is not None:
            return self._block_causal(inp, rows, lo, hi)
        if first:
            h, kvs = self._run(inp, rows, slice(0, L), slice(0, L), None, True)
            self._store(rows, slice(0, L), kvs)
            self._joined = None
            return self.model.output_logits(h[:, lo:hi])
        if self.mode == "prefix":
            keys = slice(0, L)
            h, _ = self._run(inp, rows, slice(lo, L), keys, self._prefix(rows, lo), False)
            return self.model.output_logits(h[:, : hi - lo])
        dev = inp.device
        keys = torch.cat([torch.arange(lo, device=dev), torch.arange(hi, L, device=dev),
                          torch.arange(lo, hi, device=dev)])  # fmt: skip
        h, _ = self._run(inp, rows, slice(lo, hi), keys, self._outside(rows, lo, hi), False)
        return self.model.output_logits(h)

    def _block_causal(self, inp, rows, lo: int, hi: int) -> Tensor:
        """Exact cache. Newly finished columns ``done:lo`` run once, together with the block
        (one pass: their keys and values are kept, the block's logits returned); later steps run
        the block alone against the cache (every key visible without padding: no mask)."""
        c = self.done
        if c < lo:
            h, kvs = self._run(inp, rows, slice(c, hi), slice(0, hi), self._prefix(rows, c), True)
            self._store(rows, slice(c, lo), kvs)
            self.done = lo
            return self.model.output_logits(h[:, lo - c :])
        h, _ = self._run(inp, rows, slice(lo, hi), slice(0, hi), self._prefix(rows, lo), False,
                         mask=self.padded)  # fmt: skip
        return self.model.output_logits(h)
