"""Memory of a training run per GPU, by count: what ``lm-core fit --dry-run`` prints.

Parameters are counted on a model built on the meta device (exact, no memory). Bytes per rank:

- weights, gradients and AdamW's two moments in float32: 4 + 4 + 8 bytes per parameter, divided
  by the world size under FSDP (each rank keeps its shards), whole on every rank otherwise;
- under FSDP, the units gathered at a time: the root (embedding, final norm) for the whole step
  and two blocks (the current one and the one prefetched), their weights in the compute dtype
  and their gradients before the reduce-scatter;
- activations saved for backward, per token and layer (:func:`block_activation_bytes`), times
  the layers (or, with activation checkpointing, each block's input per layer plus one block's
  activations while it is recomputed), plus the vocabulary head at the masked positions
  (float32 log-probabilities; one chunk of them with ``objective.ce_chunk``).

The per-layer count follows the code in :mod:`lm_core.nn`: norms in float32, RoPE in float32,
flash/varlen attention keeping q, k, v, output and log-sum-exp (no T x T matrix). It is a count,
not a measurement: allocator fragmentation, NCCL buffers and the CUDA context (a few GB) come on
top, so a config should leave headroom (:data:`HEADROOM`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lm_core.config import ModelConfig

GIB = 1024**3
HEADROOM = 0.9
"""A run "fits" when the count is at most this share of the GPU's memory."""


def block_activation_bytes(cfg: ModelConfig, act_bytes: int) -> int:
    """Bytes one block saves for backward per token, activations of ``act_bytes`` each (2 for
    bf16, 4 for float32).

    Per RMSNorm: its float32 input and normalised value, and its output (2 norms); q and k:
    float32 copies and rotated halves in RoPE plus the rotated result; v; the attention output;
    SwiGLU: gate, silu(gate), up and their product (4 x ffn_hidden)."""
    d, s, F = cfg.d_model, act_bytes, cfg.ffn_hidden
    dkv = cfg.n_kv_heads * cfg.head_dim
    norms = 2 * (8 + s) * d
    rope_q, rope_k = (8 + s) * d, (8 + s) * dkv
    v_and_out = s * dkv + s * d
    lse = 4 * cfg.n_heads
    mlp = 4 * F * s
    return norms + rope_q + rope_k + v_and_out + lse + mlp


def head_bytes_per_position(cfg: ModelConfig, act_bytes: int) -> int:
    """Bytes saved per position projected to the vocabulary: float32 log-probabilities [V] and
    the gathered hidden state."""
    return 4 * cfg.vocab_size + act_bytes * cfg.d_model


@dataclass
class MemoryEstimate:
    """Bytes per rank of a training run (see the module docstring for what each counts)."""

    parameters: int
    world: int
    fsdp: bool
    weights: int
    grads: int
    optimizer: int
    gathered: int
    activations: int
    head: int

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.grads
            + self.optimizer
            + self.gathered
            + self.activations
            + self.head
        )

    def fits(self, gpu_gib: float) -> bool:
        """Whether the count is within :data:`HEADROOM` of a ``gpu_gib`` GiB device."""
        return self.total <= HEADROOM * gpu_gib * GIB


def estimate_memory(
    cfg: ModelConfig,
    parameters: int,
    *,
    tokens: int,
    world: int,
    fsdp: bool,
    bf16: bool,
    activation_checkpointing: bool,
    masked_frac: float = 1.0,
    ce_chunk: int = 0,
) -> MemoryEstimate:
    """Bytes per rank for ``tokens`` tokens per GPU (a packed row or a micro-batch) at
    ``world`` ranks; ``masked_frac`` of positions projected to the vocabulary (1.0 is the
    worst case of the masked-diffusion loss, whose t ~ U(0, 1) masks half on average)."""
    s = 2 if bf16 else 4
    shard = world if fsdp else 1
    weights, grads, optimizer = (-(-b * parameters // shard) for b in (4, 4, 8))
    gathered = 0
    if fsdp:
        root = parameters - cfg.n_layers * _block_params(cfg)
        gathered = (root + 2 * _block_params(cfg)) * (s + 4)
    per_layer = block_activation_bytes(cfg, s) * tokens
    rope = 8 * cfg.head_dim * tokens  # cos and sin, shared by all layers
    if activation_checkpointing:
        activations = cfg.n_layers * s * cfg.d_model * tokens + per_layer + rope
    else:
        activations = cfg.n_layers * per_layer + rope
    activations += (8 + s) * cfg.d_model * tokens  # the final norm
    projected = int(round(masked_frac * tokens))
    if ce_chunk > 0:
        head = s * cfg.d_model * projected + 4 * cfg.vocab_size * min(ce_chunk, projected)
    else:
        head = head_bytes_per_position(cfg, s) * projected
    return MemoryEstimate(
        parameters, world, fsdp, weights, grads, optimizer, gathered, activations, head
    )


def _block_params(cfg: ModelConfig) -> int:
    d, D = cfg.d_model, cfg.head_dim
    return d * cfg.n_heads * D * 2 + d * cfg.n_kv_heads * D * 2 + 3 * d * cfg.ffn_hidden + 2 * d


def report(est: MemoryEstimate, gpu_gib: float | None) -> list[str]:
    """The lines ``--dry-run`` prints for an estimate (GiB per rank)."""

    def g(b: int) -> str:
        return f"{b / GIB:8.2f} GiB"

    how = f"sharded over {est.world} ranks (FSDP)" if est.fsdp else "replicated on every rank"
    lines = [
        f"per rank, {how}:",
        f"  weights (fp32)            {g(est.weights)}",
        f"  gradients (fp32)          {g(est.grads)}",
        f"  AdamW moments (fp32)      {g(est.optimizer)}",
    ]
    if est.fsdp:
        lines.append(f"  gathered units            {g(est.gathered)}  (root + 2 blocks)")
    lines += [
        f"  activations               {g(est.activations)}",
        f"  vocabulary head           {g(est.head)}",
        f"  total                     {g(est.total)}",
    ]
    if gpu_gib is not None:
        verdict = "fits" if est.fits(gpu_gib) else "does NOT fit"
        lines.append(
            f"  {verdict} in {gpu_gib:g} GiB per GPU (counted against {HEADROOM:.0%} of it)"
        )
    return lines
