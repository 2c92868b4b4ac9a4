"""The vocabulary projection fused with cross-entropy, in chunks that keep no logits.

At 8192 tokens and a 155k vocabulary, float32 logits of every position take 5 GB (and their
softmax gradient as much again). The masked-diffusion loss needs logits at masked positions only
(:meth:`lm_core.nn.transformer.Transformer.forward` ``logits_at``); this module goes one step
further: the cross-entropy of N positions in chunks of ``chunk``, each chunk's logits recomputed
in backward instead of kept (activation checkpointing of the head), so the peak is one chunk's
[chunk, V] logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def _chunk_ce(hidden: Tensor, weight: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy((hidden @ weight.t()).float(), targets, reduction="none")


def vocab_cross_entropy(hidden: Tensor, weight: Tensor, targets: Tensor, chunk: int = 0) -> Tensor:
    """Per-position cross-entropy of ``hidden @ weight.T`` against ``targets``.

    Args:
        hidden: [N, d] final (normed) hidden states.
        weight: [V, d] output projection (the tied embedding or the LM head).
        targets: [N] token ids.
        chunk: positions per chunk; 0 (or >= N) computes all logits at once and keeps them for
            backward (fastest); a chunk recomputes its [chunk, V] logits in backward.

    Returns:
        float32 [N] cross-entropy in nats (equal to ``F.cross_entropy`` on the full logits).
    """
    n = hidden.shape[0]
    if chunk <= 0 or chunk >= n:
        return _chunk_ce(hidden, weight, targets)
    parts = [
        checkpoint(
            _chunk_ce, hidden[i : i + chunk], weight, targets[i : i + chunk], use_reentrant=False
        )
        for i in range(0, n, chunk)
    ]
    return torch.cat(parts)
