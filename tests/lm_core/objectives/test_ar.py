"""Causal AR loss (lm_core.objectives.ar): document boundaries, causal model, valid tokens."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lm_core.config import ModelConfig
from lm_core.nn.transformer import Transformer
from lm_core.objectives.ar import causal_lm_loss

V, MASK = 7, 6


class Lookup(torch.nn.Module):
    """A 'model' whose logits at each position depend only on that position's input id."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.randn(V, V, generator=torch.Generator().manual_seed(3))

    def forward(self, x, **kw):
        return self.table[x]


@torch.no_grad()
def test_ar_loss_never_crosses_documents():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, causal=True))
    docs = [torch.randint(0, V, (1, n)) for n in (4, 7, 2)]
    ids = torch.cat(docs, dim=1)
    cu = torch.tensor([0, 4, 11, 13], dtype=torch.int32)
    packed, _ = causal_lm_loss(model, ids, cu_seqlens=cu)
    total = sum(float(causal_lm_loss(model, d)[0]) * (d.shape[1] - 1) for d in docs)
    assert float(packed) == pytest.approx(total / sum(d.shape[1] - 1 for d in docs), rel=1e-5)
    # the flat (unpacked) loss differs: it would predict across the boundaries
    flat, _ = causal_lm_loss(model, ids)
    assert abs(float(flat) - float(packed)) > 1e-4


def test_ar_loss_needs_causal_model_and_respects_valid():
    with pytest.raises(ValueError, match="causal"):
        causal_lm_loss(
            Transformer(ModelConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2)),
            torch.zeros(1, 3, dtype=torch.long),
        )
    model = Transformer(ModelConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, causal=True))
    ids = torch.randint(0, V, (1, 6))
    valid = torch.tensor([[True] * 4 + [False] * 2])
    loss, _ = causal_lm_loss(model, ids, valid=valid)
    logits = model(ids[:, :4])
    ref = F.cross_entropy(logits[0, :3], ids[0, 1:4])
    assert float(loss) == pytest.approx(float(ref), rel=1e-5)
