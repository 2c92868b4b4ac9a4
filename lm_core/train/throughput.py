"""Throughput: model FLOPs of a training step, the peak of known GPUs (for MFU), AdamW options.

MFU (model FLOPs utilisation) = model FLOPs per second / the devices' peak. Model FLOPs count
the matmuls a training step must do (forward + backward = 3 x forward), not what activation
checkpointing recomputes:

- ``6 N`` per token for the N weights of the blocks' linear layers,
- ``12 L T d`` per token for attention scores and values (T the sequence length, bidirectional:
  every position attends to all T; a causal model to T / 2 on average),
- ``6 d V`` per position projected to the vocabulary (the masked-diffusion loss projects masked
  positions only, so its head costs ``masked_frac`` of that).
"""

from __future__ import annotations

import torch

from lm_core.config import ModelConfig

PEAK_TFLOPS = (
    # (substring of torch.cuda.get_device_name(), dense bf16 TFLOP/s, dense tf32 TFLOP/s)
    ("H200", 989.0, 494.0),
    ("GH200", 989.0, 494.0),
    ("H100 PCIe", 756.0, 378.0),
    ("H100 NVL", 835.0, 418.0),
    ("H100", 989.0, 494.0),  # SXM (HBM3)
    ("H800", 989.0, 494.0),
    ("B200", 2250.0, 1100.0),
    ("A100", 312.0, 156.0),
    ("A800", 312.0, 156.0),
    ("L40S", 362.0, 183.0),
    ("L4", 121.0, 60.0),
    ("A10G", 70.0, 35.0),
    ("A10", 125.0, 62.5),
    ("RTX 4090", 165.0, 82.6),
    ("RTX 3090", 71.0, 35.6),
)
"""Dense (no sparsity) tensor-core peaks from the vendors' data sheets; first match wins."""


def gpu_peak_tflops(name: str, precision: str) -> float | None:
    """Peak TFLOP/s of the GPU called ``name`` at ``precision`` (bf16 for bf16/16 precisions,
    tf32 otherwise); None for a GPU not in :data:`PEAK_TFLOPS`."""
    bf16 = "16" in str(precision)  # bf16-mixed, bf16-true, 16-mixed
    for key, p_bf16, p_tf32 in PEAK_TFLOPS:
        if key in name:
            return p_bf16 if bf16 else p_tf32
    return None


def peak_flops(device: torch.device, precision: str) -> float | None:
    """Peak FLOP/s of one ``device``; None on CPU and unknown GPUs (then MFU is not logged)."""
    if device.type != "cuda":
        return None
    tf = gpu_peak_tflops(torch.cuda.get_device_name(device), precision)
    return None if tf is None else tf * 1e12


def linear_params(cfg: ModelConfig) -> int:
    """Weights of the blocks' linear layers (attention projections and the SwiGLU MLP)."""
    d, D = cfg.d_model, cfg.head_dim
    attn = d * cfg.n_heads * D * 2 + d * cfg.n_kv_heads * D * 2
    mlp = 3 * d * cfg.ffn_hidden
    return cfg.n_layers * (attn + mlp)


def flops_per_token(cfg: ModelConfig, seq_len: int, head_frac: float = 1.0) -> float:
    """Training FLOPs per token (forward and backward) at sequence length ``seq_len``, with a
    share ``head_frac`` of positions projected to the vocabulary."""
    attn_len = seq_len / 2 if cfg.causal else seq_len
    return (
        6.0 * linear_params(cfg)
        + 12.0 * cfg.n_layers * attn_len * cfg.d_model
        + 6.0 * cfg.d_model * cfg.vocab_size * head_frac
    )


def train_flops(cfg: ModelConfig, batch: dict, masked_frac=None) -> float:
    """Model FLOPs of one training step on ``batch`` (packed: attention within each document;
    padded: over each row's length), the head on ``masked_frac`` of the positions (all when
    None)."""
    frac = 1.0 if masked_frac is None else float(masked_frac)
    ids = batch["input_ids"]
    cu = batch.get("cu_seqlens")
    if cu is not None:
        lengths = (cu[1:] - cu[:-1]).double()
        total = float(lengths.sum())
        # attention term per document: its length times its tokens
        per_doc = sum(flops_per_token(cfg, int(n), frac) * int(n) for n in lengths.tolist())
        return per_doc if total else 0.0
    B, T = ids.shape
    valid = batch.get("valid")
    n = int(valid.sum()) if valid is not None else B * T
    return flops_per_token(cfg, T, frac) * n


def adamw_options(device: torch.device) -> dict:
    """``torch.optim.AdamW`` keyword arguments for parameters on ``device``: the fused CUDA
    kernel on GPUs, the default (foreach) implementation elsewhere."""
    return {"fused": True} if device.type == "cuda" else {}
