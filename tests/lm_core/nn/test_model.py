"""Transformer denoiser: published size, packing on every backend, GQA, causal mode, time input."""

from __future__ import annotations

import pytest
import torch

from lm_core.config import ConfigError, ModelConfig, illada_8b
from lm_core.nn.attention import available_backends
from lm_core.nn.layers import RMSNorm
from lm_core.nn.transformer import Transformer

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def small(**kw) -> ModelConfig:
    base = dict(vocab_size=50, d_model=32, n_layers=2, n_heads=4, max_seq_len=64)
    return ModelConfig(**{**base, **kw})


def test_illada_8b_parameter_count_on_meta():
    with torch.device("meta"):
        model = Transformer(illada_8b())
    assert round(model.num_parameters() / 1e9, 2) == 7.62
    assert round(model.num_parameters(exclude_embeddings=True) / 1e9, 2) == 6.98
    assert model.blocks[0].attn.k_proj.weight.shape == (8 * 128, 4096)  # 8 KV heads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True])
@torch.no_grad()  # flex is among the backends: forward-only on CPU
def test_packed_equals_each_document_alone_on_every_backend(device, causal):
    torch.manual_seed(0)
    lengths = [5, 9, 3]
    cu = torch.tensor([0, 5, 14, 17], dtype=torch.int32, device=device)
    ids = torch.randint(0, 50, (1, sum(lengths)), device=device)
    for backend in available_backends(device):
        model = Transformer(small(causal=causal, attn_backend=backend, n_kv_heads=2)).to(device)
        dtype = torch.float32 if backend == "sdpa" else torch.bfloat16
        model = model.to(dtype)
        packed = model(ids, cu_seqlens=cu)
        alone = torch.cat(
            [model(ids[:, int(a) : int(b)]) for a, b in zip(cu[:-1], cu[1:], strict=True)], dim=1
        )
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(packed, alone, atol=tol, rtol=tol, msg=backend)


def test_gqa_matches_repeated_kv_heads():
    torch.manual_seed(0)
    gqa = Transformer(small(n_kv_heads=2))
    mha = Transformer(small(n_kv_heads=4))
    sd = gqa.state_dict()
    D = gqa.cfg.head_dim
    for i in range(2):
        for name in ("k_proj", "v_proj"):
            w = sd[f"blocks.{i}.attn.{name}.weight"].view(2, D, -1)
            sd[f"blocks.{i}.attn.{name}.weight"] = w.repeat_interleave(2, dim=0).reshape(4 * D, -1)
    mha.load_state_dict(sd)
    ids = torch.randint(0, 50, (2, 7))
    torch.testing.assert_close(gqa(ids), mha(ids), atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="n_kv_heads"):
        small(n_kv_heads=3)


def test_causal_mode_ignores_the_future_and_bidirectional_does_not():
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (1, 10))
    changed = ids.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % 50
    causal = Transformer(small(causal=True))
    torch.testing.assert_close(causal(ids)[:, :7], causal(changed)[:, :7])
    bidir = Transformer(small())
    assert not torch.allclose(bidir(ids)[:, :7], bidir(changed)[:, :7])


def test_time_conditioning_is_off_by_default_and_required_when_on():
    assert ModelConfig().time_conditioning is False
    assert Transformer(small()).time_emb is None
    model = Transformer(small(time_conditioning=True))
    ids = torch.randint(0, 50, (2, 6))
    with pytest.raises(ValueError, match="time_conditioning"):
        model(ids)
    out0, out1 = model(ids, t=torch.zeros(2)), model(ids, t=torch.ones(2))
    assert out0.shape == (2, 6, 50) and not torch.allclose(out0, out1)


def test_rmsnorm_computes_in_fp32_under_bf16():
    x = torch.randn(4, 64, dtype=torch.bfloat16) * 100
    norm = RMSNorm(64)
    y = norm(x)
    assert y.dtype == torch.bfloat16
    xf = x.float()
    ref = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(y, ref.to(torch.bfloat16), atol=0, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert norm(torch.randn(2, 64)).dtype == torch.float32


def test_too_long_sequence_is_a_clear_error():
    with pytest.raises(ValueError, match="max_seq_len=64"):
        Transformer(small())(torch.zeros(1, 65, dtype=torch.long))


def test_dropout_acts_in_training_only_and_bad_rates_are_named():
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 16))
    model = Transformer(small(dropout=0.3))
    model.train()
    assert not torch.allclose(model(ids), model(ids))  # a fresh mask per call
    model.eval()
    assert torch.equal(model(ids), model(ids))
    plain = Transformer(small())
    plain.load_state_dict(model.state_dict())  # dropout adds no parameters
    assert torch.equal(plain.eval()(ids), model(ids))
    with pytest.raises(ConfigError, match="model.dropout"):
        small(dropout=1.0)
