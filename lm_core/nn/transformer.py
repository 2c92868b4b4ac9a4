"""The block denoiser: a dense pre-norm Transformer, bidirectional by default.

Reads top to bottom: Attention -> Block -> Transformer. Shapes use B (batch), T (tokens),
d (d_model), H / Hkv (query / key-value heads), D (head dim), V (vocabulary).

The same module serves masked diffusion (bidirectional), the autoregressive baseline
(``causal=True``), flow models (``time_conditioning=True``, fed ``inputs_embeds``) and tsdiff,
which feeds its own numeric embeddings through ``inputs_embeds`` and reads ``hidden`` states.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from lm_core.config import ModelConfig
from lm_core.nn.attention import AttentionPlan, attention, compute_dtype, plan_attention
from lm_core.nn.flex import MaskSpec, block_causal_spec
from lm_core.nn.head import vocab_cross_entropy
from lm_core.nn.layers import RMSNorm, RotaryEmbedding, SwiGLU, TimeEmbedding
from lm_core.nn.masks import document_ids

KV = tuple[Tensor, Tensor]


def _local_device(p: Tensor) -> torch.device:
    """The device of a parameter's local data (a sharded DTensor's shard lives there)."""
    return p.to_local().device if hasattr(p, "to_local") else p.device


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE and no biases."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D = cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_heads * D, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.n_kv_heads * D, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.n_kv_heads * D, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * D, cfg.d_model, bias=False)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        *,
        plan: AttentionPlan,
        kv_prefix: KV | None = None,
    ) -> tuple[Tensor, KV]:
        """x: [B, T, d] -> ([B, T, d], (k, v) each [B, T, Hkv, D] with RoPE applied); ``plan``
        the batch's :func:`~lm_core.nn.attention.plan_attention`, shared by every layer."""
        B, T, _ = x.shape
        D = self.cfg.head_dim
        q = self.q_proj(x).view(B, T, self.cfg.n_heads, D)
        k = self.k_proj(x).view(B, T, self.cfg.n_kv_heads, D)
        v = self.v_proj(x).view(B, T, self.cfg.n_kv_heads, D)
        q = RotaryEmbedding.apply(q, cos, sin)
        k = RotaryEmbedding.apply(k, cos, sin)
        k_all, v_all = k, v
        if kv_prefix is not None:
            k_all = torch.cat([kv_prefix[0].to(k.dtype), k], dim=1)
            v_all = torch.cat([kv_prefix[1].to(v.dtype), v], dim=1)
        out = attention(q, k_all, v_all, plan=plan)
        return self.o_proj(out.reshape(B, T, -1)), (k, v)


class Block(nn.Module):
    """Pre-norm residual block: x + drop(attn(norm(x))), then x + drop(mlp(norm(x)))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.ffn_hidden)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, x, cos, sin, *, plan, kv_prefix=None):
        h, kv = self.attn(self.attn_norm(x), cos, sin, plan=plan, kv_prefix=kv_prefix)
        x = x + self.drop(h)
        x = x + self.drop(self.mlp(self.mlp_norm(x)))
        return x, kv


class Transformer(nn.Module):
    """Token embedding -> n_layers Blocks -> RMSNorm -> vocabulary logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.activation_checkpointing = False
        """Recompute each block's activations in backward instead of keeping them (training:
        set by :mod:`lm_core.train.sharding`); only the block inputs are stored."""
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.time_emb = TimeEmbedding(cfg.d_model) if cfg.time_conditioning else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm_f = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = (
            None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        )
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        if not torch.empty(0).is_meta:
            self.reset_parameters()

    def skip_constructor_draws(self) -> None:
        """Advance the global CPU RNG as building this model's layers directly on the CPU does
        (PyTorch's default inits of Linear and Embedding, which :meth:`reset_parameters` then
        overwrites), one parameter-sized tensor at a time: a model built on the meta device then
        draws, after the same seed, the weights a direct build draws."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                torch.empty(m.weight.shape, device="cpu").uniform_()
                if m.bias is not None:
                    torch.empty(m.bias.shape, device="cpu").uniform_()
            elif isinstance(m, nn.Embedding):
                torch.empty(m.weight.shape, device="cpu").normal_()

    def initial_values(self, device=None) -> Iterator[tuple[str, Tensor]]:
        """(name, initial value) of every parameter, in ``named_parameters`` order, drawn from the
        global RNG on ``device`` (default: the parameter's): normal(0, init_std) for matrices
        (residual output projections scaled by (2 n_layers)^-0.5, GPT-2 style), ones for norm
        weights, zeros else.

        One full-size tensor at a time: the sharded build (:mod:`lm_core.train.sharding`) keeps
        each rank's slice of it, so a sharded model starts from exactly the weights a single
        process builds from the same seed."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            shape, device_p = p.shape, device or _local_device(p)
            if p.dim() >= 2:
                scale = (2 * self.cfg.n_layers) ** -0.5
                s = std * (scale if name.endswith(("o_proj.weight", "down.weight")) else 1.0)
                value = torch.empty(shape, dtype=p.dtype, device=device_p).normal_(0.0, s)
            elif name.endswith("weight") and "norm" in name:
                value = torch.ones(shape, dtype=p.dtype, device=device_p)
            else:
                value = torch.zeros(shape, dtype=p.dtype, device=device_p)
            yield name, value

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise every parameter (:meth:`initial_values`) and recompute the RoPE buffer."""
        params = dict(self.named_parameters())
        for name, value in self.initial_values():
            params[name].copy_(value)
        self.reset_buffers()

    def reset_buffers(self) -> None:
        """Recompute non-persistent buffers (RoPE ``inv_freq``), e.g. after ``to_empty``."""
        self.rope.reset_parameters()

    # ------------------------------------------------------------------ helpers
    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.tok_emb.weight.numel()
        return n

    def default_positions(self, B: int, T: int, device, cu_seqlens: Tensor | None) -> Tensor:
        """Positions [B, T]: 0..T-1 per row, or restarting at 0 in each packed document."""
        pos = torch.arange(T, device=device)
        if cu_seqlens is not None:
            doc = document_ids(cu_seqlens.to(device), T)
            pos = pos - cu_seqlens.to(device).long()[doc]
        return pos[None].expand(B, T)

    def output_logits(self, hidden: Tensor) -> Tensor:
        """Final hidden states [B, T, d] (already normed) -> logits [B, T, V]."""
        w = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        return hidden @ w.t()

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: Tensor | None = None,
        *,
        inputs_embeds: Tensor | None = None,
        positions: Tensor | None = None,
        cu_seqlens: Tensor | None = None,
        attn_mask: Tensor | MaskSpec | None = None,
        t: Tensor | None = None,
        kv_prefix: list[KV] | None = None,
        return_hidden: bool = False,
        return_kv: bool = False,
        logits_at: Tensor | None = None,
        targets: Tensor | None = None,
        ce_chunk: int = 0,
    ):
        """Run the denoiser.

        Args:
            input_ids: [B, T] token ids (or give ``inputs_embeds`` [B, T, d] instead, e.g. soft
                embeddings or tsdiff's numeric cell embeddings).
            positions: [B, T] integer RoPE positions; default 0..T-1 (reset per packed document).
            cu_seqlens: int32 [N + 1] packed-document boundaries (B must be 1); attention never
                crosses documents.
            attn_mask: bool [B, T, S] or [B, 1, T, S], True = may attend (S = prefix + T), or
                a :class:`~lm_core.nn.flex.MaskSpec` (FlexAttention on CUDA, dense elsewhere).
                A block-causal model (``cfg.block_causal`` = N) given neither ``attn_mask`` nor
                ``kv_prefix`` builds its mask here: blocks are ``positions // N``. Masks, the
                backend and the varlen lengths are planned once per forward
                (:func:`~lm_core.nn.attention.plan_attention`), not in every layer.
            t: [B] noise level in [0, 1], required when ``time_conditioning`` is on.
            kv_prefix: per-layer cached (k, v) [B, P, Hkv, D] that every position may attend to
                (e.g. an encoded context reused across sampling steps).
            return_hidden: return the final normed hidden states [B, T, d] instead of logits.
            return_kv: also return the per-layer (k, v) of these T positions.
            logits_at: bool [B, T]: project only these N positions to the vocabulary (the
                masked-diffusion loss needs no logits elsewhere): logits [N, V].
            targets: [N] token ids at ``logits_at``: return the float32 cross-entropy [N] there
                instead of logits, in chunks of ``ce_chunk`` positions whose logits are
                recomputed in backward (0: one chunk, logits kept), see
                :func:`lm_core.nn.head.vocab_cross_entropy`.

        Returns:
            logits [B, T, V] (or hidden [B, T, d]; logits [N, V] or CE [N] with ``logits_at``);
            with ``return_kv`` a tuple (out, kvs).
        """
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("give input_ids or inputs_embeds")
            if input_ids.shape[-1] > self.cfg.max_seq_len:
                raise ValueError(
                    f"sequence of {input_ids.shape[-1]} tokens is longer than "
                    f"model.max_seq_len={self.cfg.max_seq_len}"
                )
            x = self.tok_emb(input_ids)
        else:
            x = inputs_embeds
        B, T, _ = x.shape
        if self.time_emb is not None:
            if t is None:
                raise ValueError("this model has time_conditioning=True: pass t [B]")
            x = x + self.time_emb(t.reshape(-1).expand(B) if t.numel() == 1 else t)[:, None, :].to(
                x.dtype
            )
        if positions is None:
            positions = self.default_positions(B, T, x.device, cu_seqlens)
        cos, sin = self.rope.cos_sin(positions)
        if self.cfg.block_causal and attn_mask is None and kv_prefix is None:
            attn_mask = block_causal_spec(positions // self.cfg.block_causal)
        plan = plan_attention(
            batch=B, q_len=T, kv_len=T + (0 if kv_prefix is None else kv_prefix[0][0].shape[1]),
            device=x.device, dtype=compute_dtype(x), causal=self.cfg.causal,
            cu_seqlens=cu_seqlens, attn_mask=attn_mask, backend=self.cfg.attn_backend,
        )  # fmt: skip
        kvs = []
        recompute = self.activation_checkpointing and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            kw = dict(plan=plan, kv_prefix=None if kv_prefix is None else kv_prefix[i])
            if recompute:
                x, kv = checkpoint(block, x, cos, sin, use_reentrant=False, **kw)
            else:
                x, kv = block(x, cos, sin, **kw)
            if return_kv:
                kvs.append(kv)
        h = self.norm_f(x)
        if logits_at is not None:
            h = h[logits_at]
        if return_hidden:
            out = h
        elif targets is not None:
            w = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
            out = vocab_cross_entropy(h, w, targets, ce_chunk)
        else:
            out = self.output_logits(h)
        return (out, kvs) if return_kv else out
