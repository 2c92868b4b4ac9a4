"""Typed configuration dataclasses.

Attribute docstrings (the string literal under each field) are read by jsonargparse, so they
become the ``--help`` text of ``lm-core fit``. Every YAML under ``configs/lm`` mirrors these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names the field."""


def _check(cond: bool, field_name: str, expected: str, got: object) -> None:
    if not cond:
        raise ConfigError(f"{field_name}: expected {expected}, got {got!r}")


@dataclass
class ModelConfig:
    """Shape of the Transformer denoiser (dense, pre-norm, RMSNorm, SwiGLU, RoPE, GQA)."""

    vocab_size: int | None = 260
    """Number of token ids the embedding holds (including the reserved MASK/EOS/PAD ids); null
    lets ``lm-core fit`` take it from the tokenizer."""
    d_model: int = 256
    """Width of the residual stream."""
    n_layers: int = 4
    """Number of Transformer blocks."""
    n_heads: int = 4
    """Number of query heads."""
    n_kv_heads: int | None = None
    """Number of key/value heads (grouped-query attention); None means equal to n_heads."""
    ffn_hidden: int | None = None
    """Hidden width of the SwiGLU MLP; None means 8/3 * d_model rounded up to a multiple of 64."""
    max_seq_len: int = 512
    """Longest sequence (tokens) the model accepts."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    tie_embeddings: bool = True
    """Share the input embedding matrix with the output projection."""
    causal: bool = False
    """Causal (autoregressive) attention; False gives the bidirectional diffusion denoiser."""
    time_conditioning: bool = False
    """Add an embedding of the noise level t to every position (off for LLaDA; on for flow)."""
    init_std: float = 0.02
    """Standard deviation of the normal initialisation of linear and embedding weights."""
    dropout: float = 0.0
    """Dropout on each attention and MLP output before its residual add (training only)."""
    attn_backend: Literal["auto", "flash", "varlen", "flex", "sdpa"] = "auto"
    """Attention kernel: auto picks flash-attn, then torch varlen for unmasked or packed bf16
    batches on CUDA, FlexAttention (a BlockMask) for other packed or block-causal batches on
    CUDA, else SDPA with a dense mask (CPU). flex on CPU runs forward only (no training)."""
    block_causal: int = 0
    """0: bidirectional. N > 0: block-causal (BD3-LM, Fast-dLLM v2): attention is bidirectional
    within blocks of N positions and causal across them, so a generation KV cache is exact;
    training then feeds noisy and clean copies side by side (lm_core.objectives.masked)."""

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.ffn_hidden is None:
            self.ffn_hidden = 64 * ((int(8 * self.d_model / 3) + 63) // 64)
        self.validate()

    def validate(self) -> None:
        names = ("d_model",) if self.vocab_size is None else ("vocab_size", "d_model")
        for name in (*names, "n_layers", "n_heads", "max_seq_len", "ffn_hidden"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v > 0, f"model.{name}", "a positive integer", v)
        _check(
            self.d_model % self.n_heads == 0,
            "model.d_model",
            f"a multiple of model.n_heads={self.n_heads}",
            self.d_model,
        )
        _check(
            (self.d_model // self.n_heads) % 2 == 0,
            "model.d_model / model.n_heads",
            "an even head dimension (RoPE rotates pairs)",
            self.d_model // self.n_heads,
        )
        _check(
            isinstance(self.n_kv_heads, int)
            and self.n_kv_heads > 0
            and self.n_heads % self.n_kv_heads == 0,
            "model.n_kv_heads",
            f"a positive divisor of model.n_heads={self.n_heads}",
            self.n_kv_heads,
        )
        _check(self.rope_theta > 0, "model.rope_theta", "a positive number", self.rope_theta)
        _check(
            isinstance(self.dropout, int | float) and 0.0 <= self.dropout < 1.0,
            "model.dropout",
            "a number in [0, 1)",
            self.dropout,
        )
        _check(
            self.attn_backend in ("auto", "flash", "varlen", "flex", "sdpa"),
            "model.attn_backend",
            "one of auto, flash, varlen, flex, sdpa",
            self.attn_backend,
        )
        _check(
            isinstance(self.block_causal, int) and self.block_causal >= 0,
            "model.block_causal",
            "a block size >= 0 (0 = bidirectional)",
            self.block_causal,
        )
        _check(
            not (self.block_causal and self.causal),
            "model.block_causal",
            "0 with model.causal=true",
            self.block_causal,
        )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"model: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**d)


def illada_8b() -> ModelConfig:
    """The iLLaDA-8B shape: 32 layers, d 4096, 32 heads / 8 KV heads, FFN 14336, vocab 155136."""
    return ModelConfig(
        vocab_size=155136,
        d_model=4096,
        n_layers=32,
        n_heads=32,
        n_kv_heads=8,
        ffn_hidden=14336,
        max_seq_len=8192,
        rope_theta=500000.0,
        tie_embeddings=True,
    )


@dataclass
class CorruptionConfig:
    """Masked-diffusion forward process (t = 0 clean, t = 1 all masked)."""

    eps: float = 1e-3
    """Floor of the masking probability: p = (1 - eps) t + eps."""
    stratified: bool = False
    """Stratify t across the batch (one draw per equal-width stratum) to cut loss variance."""

    def __post_init__(self) -> None:
        _check(0.0 <= self.eps < 1.0, "corruption.eps", "a number in [0, 1)", self.eps)


@dataclass
class OptimConfig:
    """AdamW with a warmup-stable-decay schedule."""

    lr: float = 3e-4
    """Peak learning rate."""
    weight_decay: float = 0.1
    """AdamW weight decay (not applied to norms and embeddings)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    warmup_steps: int = 100
    """Linear warmup length in optimiser steps."""
    decay_fraction: float = 0.2
    """Share of max_steps spent in the final cosine decay (WSD's decay tail)."""
    min_lr_ratio: float = 0.1
    """Learning rate at the end of the decay, as a fraction of lr."""
    grad_clip: float = 1.0
    """Gradient-norm clipping threshold (0 disables)."""
    ema_decay: float = 0.0
    """Exponential moving average of weights (0 disables); the EMA weights are saved for inference."""

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr", "a positive number", self.lr)
        _check(
            self.warmup_steps >= 0,
            "optim.warmup_steps",
            "a non-negative integer",
            self.warmup_steps,
        )
        _check(
            0.0 <= self.decay_fraction <= 1.0,
            "optim.decay_fraction",
            "a number in [0, 1]",
            self.decay_fraction,
        )
        _check(0.0 <= self.ema_decay < 1.0, "optim.ema_decay", "a number in [0, 1)", self.ema_decay)
        _check(self.grad_clip >= 0, "optim.grad_clip", "a non-negative number", self.grad_clip)


@dataclass
class FlowConfig:
    """Flow LM in a frozen encoder's latent space (objective.kind flow; see lm_core.flow)."""

    d_latent: int = 32
    """Width of the low-dimensional bottleneck the flow runs in."""
    encoder_ckpt: str | None = None
    """lm_core masked-DLM checkpoint whose final hidden states are the frozen encoder (its
    tokenizer is used); null trains a small token-embedding encoder here, then freezes it."""
    encoder_features: str = "hidden+embedding"
    """What the frozen encoder gives the codec: ``hidden`` (its final hidden states, as in ELF) or
    ``hidden+embedding`` (those with the encoder's own input embedding of the token appended). A
    masked DLM is trained only on masked cells, so its hidden states at visible cells need not keep
    the token: from ``hidden`` alone the codec decoded 17 % of Shakespeare tokens, with the
    embedding appended 94 % (same 150 codec steps)."""
    d_encoder: int = 64
    """Width of the embedding encoder trained here (when encoder_ckpt is null)."""
    decoder_hidden: int = 0
    """Hidden width of the latent -> token decoder MLP (0: a linear decoder)."""
    codec_steps: int = 200
    """Steps training the bottleneck and decoder (and the embedding encoder) before the flow."""
    codec_lr: float = 3e-3
    """Learning rate of that codec phase."""
    decoder_noise: float = 0.2
    """Noise (in units of the latent's std) added to latents while the decoder trains."""
    t_mean: float = 0.0
    """Mean of the logit-normal time density."""
    t_std: float = 1.0
    """Std of the logit-normal time density."""
    t_min: float = 0.05
    """t is clamped to at least this in the 1 / t^2 weight of the x-prediction velocity loss."""
    self_condition: bool = True
    """Feed the previous x-prediction as an extra input (half of training rows)."""
    prompt_prob: float = 0.5
    """Share of training rows whose leading part is a clean prompt (no loss there)."""
    max_prompt_frac: float = 0.5
    """Longest prompt, as a share of the row's length."""
    cond_drop: float = 0.1
    """Prompt dropout (replaced by a learned null latent) for classifier-free guidance."""

    def __post_init__(self) -> None:
        for name in ("d_latent", "d_encoder", "codec_steps"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v > 0, f"objective.flow.{name}", "a positive integer", v)
        for name in ("prompt_prob", "max_prompt_frac", "cond_drop"):
            v = getattr(self, name)
            _check(0.0 <= v <= 1.0, f"objective.flow.{name}", "a number in [0, 1]", v)
        _check(0.0 < self.t_min < 1.0, "objective.flow.t_min", "a number in (0, 1)", self.t_min)
        _check(
            self.encoder_features in ("hidden", "hidden+embedding"),
            "objective.flow.encoder_features",
            "'hidden' or 'hidden+embedding'",
            self.encoder_features,
        )
        _check(self.t_std > 0, "objective.flow.t_std", "a positive number", self.t_std)


@dataclass
class ObjectiveConfig:
    """Which loss trains the Transformer."""

    kind: Literal["masked", "ar", "sft", "flow", "dmax"] = "masked"
    """masked: the masked-diffusion ELBO (LLaDA); ar: causal next-token loss (matched baseline);
    sft: LLaDA's SFT loss (needs SFT batches, e.g. data.class_path lm_core.data.SFTDataModule):
    the masked-diffusion loss on the response and its EOS padding only, the prompt never masked,
    normalised by each answer's length."""
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)
    """Forward-process settings (masked and sft objectives)."""
    flow: FlowConfig = field(default_factory=FlowConfig)
    """Flow LM settings (objective.kind flow: flow matching in a frozen encoder's latents)."""
    dmax_share: float = 0.5
    """objective.kind dmax (DMax on-policy self-correction, lm_core.objectives.dmax): share of
    sequences whose masked cells are replaced by the model's own argmax (no-grad pass) and scored
    by CE on every maskable cell; the rest keep the masked-diffusion loss. Works on plain text
    (all real tokens maskable) and on SFT batches (the response only, normalised per answer)."""
    ce_chunk: int = 0
    """masked and sft: cross-entropy of the masked positions in chunks of this many positions,
    each chunk's logits recomputed in backward (0: all at once). Bounds the logits' memory at
    large vocabularies (8192 tokens x 155k ids in float32 are 5 GB) for one extra head matmul."""
    dmax_mask_ratio: float | None = None
    """objective.kind dmax: mask this fixed share of the maskable cells in every sequence (the
    DMax reference trains at 0.75); null: a per-sequence t ~ U(eps, 1), as the masked objective."""

    def __post_init__(self) -> None:
        _check(
            isinstance(self.ce_chunk, int) and self.ce_chunk >= 0,
            "objective.ce_chunk",
            "a non-negative integer",
            self.ce_chunk,
        )
        _check(
            self.dmax_mask_ratio is None or 0.0 < self.dmax_mask_ratio <= 1.0,
            "objective.dmax_mask_ratio",
            "null or a number in (0, 1]",
            self.dmax_mask_ratio,
        )
        _check(
            self.kind in ("masked", "ar", "sft", "flow", "dmax"),
            "objective.kind",
            "one of masked, ar, sft, flow, dmax",
            self.kind,
        )
        _check(
            0.0 <= self.dmax_share <= 1.0,
            "objective.dmax_share",
            "a number in [0, 1]",
            self.dmax_share,
        )
