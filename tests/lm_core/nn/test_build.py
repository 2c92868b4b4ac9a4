"""Building the Transformer on the meta device, then materialising it, gives the model a direct
build gives (the sharded training path builds this way); the masked-only vocabulary head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lm_core.config import ModelConfig
from lm_core.nn.head import vocab_cross_entropy
from lm_core.nn.transformer import Transformer


def small(**kw) -> ModelConfig:
    base = dict(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)
    return ModelConfig(**{**base, **kw})


def test_built_on_meta_then_materialised_equals_built_directly():
    cfg = small(rope_theta=500000.0, time_conditioning=True, tie_embeddings=False)
    torch.manual_seed(7)
    direct = Transformer(cfg)
    with torch.device("meta"):
        meta = Transformer(cfg)
    assert all(p.is_meta for p in meta.parameters()) and meta.rope.inv_freq.is_meta
    meta.to_empty(device="cpu")  # what FSDP / Lightning do: memory, but garbage in it
    torch.manual_seed(7)
    meta.skip_constructor_draws()  # what the layers' default inits draw in a direct build
    meta.reset_parameters()
    for (name, a), b in zip(direct.state_dict().items(), meta.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(meta.rope.inv_freq, direct.rope.inv_freq, rtol=0, atol=0)
    assert meta.rope.inv_freq.dtype == torch.float32 and float(meta.rope.inv_freq[0]) == 1.0
    ids = torch.randint(0, 50, (2, 20), generator=torch.Generator().manual_seed(0))
    t = torch.rand(2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(meta(ids, t=t), direct(ids, t=t), rtol=0, atol=0)


def test_reset_buffers_repairs_rope_after_to_empty():
    with torch.device("meta"):
        model = Transformer(small())
    model.to_empty(device="cpu")
    model.rope.inv_freq.fill_(-4.5e32)  # what uninitialised memory may hold
    model.reset_buffers()
    want = 1.0 / (10000.0 ** (torch.arange(0, 8, 2, dtype=torch.float32) / 8))
    torch.testing.assert_close(model.rope.inv_freq, want, rtol=0, atol=0)


def test_logits_at_projects_only_the_chosen_positions():
    torch.manual_seed(0)
    model = Transformer(small())
    ids = torch.randint(0, 50, (2, 12))
    at = torch.rand(2, 12) < 0.4
    full = model(ids)
    torch.testing.assert_close(model(ids, logits_at=at), full[at])


def test_chunked_cross_entropy_equals_full_logits_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(37, 16, generator=g, requires_grad=True)
    w = torch.randn(50, 16, generator=g, requires_grad=True)
    y = torch.randint(0, 50, (37,), generator=g)
    want = F.cross_entropy(h @ w.t(), y, reduction="none")
    gh, gw = torch.autograd.grad(want.sum(), (h, w))
    for chunk in (0, 5, 37, 100):
        got = vocab_cross_entropy(h, w, y, chunk)
        assert got.dtype == torch.float32 and got.shape == (37,)
        torch.testing.assert_close(got, want)
        ch, cw = torch.autograd.grad(got.sum(), (h, w))
        torch.testing.assert_close(ch, gh)
        torch.testing.assert_close(cw, gw)
