"""FlexAttention masks and the per-batch attention plan.

The mask_mod of every BlockMask equals the dense mask it replaces (evaluated on index grids, no
kernel); FlexAttention's forward (eager on CPU, no backward there) equals SDPA with the dense
mask; the plan is built once per batch, so the layers sync nothing with the host.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from lm_core.config import ConfigError, ModelConfig
from lm_core.nn.attention import attention, plan_attention
from lm_core.nn.flex import (
    MaskSpec,
    block_causal_spec,
    causal_mod,
    document_mod,
    dual_stream_spec,
    flex_available,
    tensor_mod,
)
from lm_core.nn.masks import block_causal_mask, document_ids, dual_stream_mask, packed_mask
from lm_core.nn.transformer import Transformer
from lm_core.objectives.masked import block_causal_logits

attention_mod = importlib.import_module("lm_core.nn.attention")  # the module, not the function
needs_flex = pytest.mark.skipif(not flex_available(), reason="this torch has no FlexAttention")


def grid(mod, B: int, Tq: int, Tk: int) -> torch.Tensor:
    """bool [B, Tq, Tk]: a mask_mod evaluated on broadcast index grids."""
    return MaskSpec(B, Tq, Tk, mod, lambda: None).evaluate(B)


def layout():
    """Two rows of 10 tokens: row 0 packs documents of 4 and 6 tokens, row 1 has 3 pad cells;
    blocks of 3 positions within each document."""
    docs = torch.tensor([[0] * 4 + [1] * 6, [0] * 10])
    pos = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3, 4, 5], list(range(10))])
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[1, 7:] = False
    return pos // 3, docs, valid


def test_document_mask_mod_equals_the_packed_mask():
    cu = torch.tensor([0, 5, 14, 17], dtype=torch.int32)
    doc = document_ids(cu, 17)
    for causal in (False, True):
        mod = document_mod(doc)
        if causal:
            mod_c = causal_mod(0)
            mod = (lambda m, c: lambda b, h, q, kv: m(b, h, q, kv) & c(b, h, q, kv))(mod, mod_c)
        assert torch.equal(grid(mod, 1, 17, 17)[0], packed_mask(cu, 17, causal))


def test_block_causal_spec_equals_the_dense_block_causal_mask():
    blocks, _, _ = layout()
    spec = block_causal_spec(blocks)
    dense = block_causal_mask(blocks, blocks)
    assert torch.equal(spec.dense(), dense)
    assert torch.equal(spec.evaluate(2), dense)
    assert not dense.all()  # the layout is not trivially all-visible


@pytest.mark.parametrize("with_docs", [False, True])
@pytest.mark.parametrize("with_valid", [False, True])
def test_dual_stream_spec_equals_the_dense_dual_stream_mask(with_docs, with_valid):
    blocks, docs, valid = layout()
    docs, valid = (docs if with_docs else None), (valid if with_valid else None)
    spec = dual_stream_spec(blocks, docs, valid)
    dense = dual_stream_mask(blocks, docs, valid)
    assert spec.q_len == spec.kv_len == 20
    assert torch.equal(spec.evaluate(2), dense)
    assert torch.equal(spec.dense(), dense)


def test_tensor_mod_reads_broadcast_dims_and_causal_mod_aligns_to_the_end():
    valid = torch.tensor([[True, True, False], [True, False, True]])
    got = grid(tensor_mod(valid[:, None, None, :]), 2, 4, 3)
    assert torch.equal(got, valid[:, None, :].expand(2, 4, 3))
    tril = torch.ones(2, 5, dtype=torch.bool).tril(3)  # 2 queries after a 3-key prefix
    assert torch.equal(grid(causal_mod(3), 1, 2, 5)[0], tril)


@needs_flex
@pytest.mark.parametrize("kind", ["packed", "packed_causal", "dual_stream"])
def test_plan_block_mask_mod_equals_the_dense_mask_of_the_sdpa_plan(kind):
    blocks, docs, valid = layout()
    cu = torch.tensor([0, 5, 14, 17], dtype=torch.int32)
    if kind == "dual_stream":
        kw = dict(batch=2, q_len=20, kv_len=20, attn_mask=dual_stream_spec(blocks, docs, valid))
    else:
        kw = dict(batch=1, q_len=17, kv_len=17, cu_seqlens=cu, causal=kind == "packed_causal")
    with torch.no_grad():
        fx = plan_attention(device="cpu", dtype=torch.float32, backend="flex", **kw)
    sd = plan_attention(device="cpu", dtype=torch.float32, backend="sdpa", **kw)
    assert fx.backend == "flex" and sd.backend == "sdpa"
    B = kw["batch"]
    dense = sd.mask[:, 0].expand(B, kw["q_len"], kw["kv_len"])
    assert torch.equal(grid(fx.block_mask.mask_mod, B, kw["q_len"], kw["kv_len"]), dense)


@needs_flex
@torch.no_grad()
def test_flex_forward_on_cpu_equals_sdpa_with_the_dense_mask():
    torch.manual_seed(0)
    blocks, docs, valid = layout()
    spec = dual_stream_spec(blocks, docs, valid)
    q = torch.randn(2, 20, 4, 8)
    k, v = torch.randn(2, 20, 2, 8), torch.randn(2, 20, 2, 8)  # grouped-query: 2 KV heads
    out = attention(q, k, v, attn_mask=spec, backend="flex")
    kr, vr = (x.repeat_interleave(2, dim=2).transpose(1, 2) for x in (k, v))
    ref = F.scaled_dot_product_attention(
        q.transpose(1, 2), kr, vr, attn_mask=spec.dense()[:, None]
    ).transpose(1, 2)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@needs_flex
@torch.no_grad()
def test_block_causal_model_and_dual_stream_logits_agree_between_flex_and_sdpa():
    torch.manual_seed(0)
    base = dict(vocab_size=50, d_model=32, n_layers=2, n_heads=4, max_seq_len=64, block_causal=4)
    sdpa = Transformer(ModelConfig(**base, attn_backend="sdpa"))
    fx = Transformer(ModelConfig(**base, attn_backend="flex"))
    fx.load_state_dict(sdpa.state_dict())
    ids = torch.randint(0, 50, (2, 12))
    torch.testing.assert_close(fx(ids), sdpa(ids), atol=1e-5, rtol=1e-5)
    cu = torch.tensor([0, 5, 12], dtype=torch.int32)
    x_t = ids[:1].clone()
    x_t[0, ::3] = 49
    got = block_causal_logits(fx, x_t, ids[:1], cu, None)
    want = block_causal_logits(sdpa, x_t, ids[:1], cu, None)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@needs_flex
def test_flex_for_training_on_cpu_stops_with_one_line():
    model = Transformer(
        ModelConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=4, attn_backend="flex")
    )
    cu = torch.tensor([0, 3, 8], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"model\.attn_backend=flex: .*no backward on cpu") as e:
        model(torch.randint(0, 50, (1, 8)), cu_seqlens=cu)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="flex"):
        ModelConfig(attn_backend="flexx")


def _stub_varlen(calls):
    """A CPU stand-in for ``varlen_attn`` (same arguments) that records ``max_len``."""

    def varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, enable_gqa=False, window_size=(-1, -1)):
        calls.append((type(max_q), max_q))
        total, H = q.shape[:2]
        mask = packed_mask(cu_q, total, causal=window_size[1] == 0)
        rep = H // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), attn_mask=mask
        )
        return out.transpose(0, 1)

    return varlen_attn


def test_layers_do_not_sync_with_the_host_the_plan_does_once(monkeypatch):
    """The varlen path needs the longest document as a Python int (a GPU-to-CPU sync): it is
    read once per forward in the plan, not in each layer. Counted on CPU with a stand-in kernel
    and every Tensor -> Python conversion wrapped: a 4-layer forward converts as often as a
    1-layer one."""
    calls: list = []
    monkeypatch.setattr(attention_mod, "_torch_varlen", _stub_varlen(calls))
    monkeypatch.setattr(attention_mod, "available_backends", lambda d: ["varlen", "sdpa"])
    counts = {"n": 0}
    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=orig, **kw):
            counts["n"] += 1
            return _orig(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    cu = torch.tensor([0, 5, 14, 17], dtype=torch.int32)
    ids = torch.randint(0, 50, (1, 17))
    per_depth = {}
    for n_layers in (1, 4):
        cfg = ModelConfig(vocab_size=50, d_model=32, n_layers=n_layers, n_heads=4, n_kv_heads=2)
        model = Transformer(cfg).to(torch.bfloat16)
        counts["n"], calls[:] = 0, []
        with torch.no_grad():
            model(ids, cu_seqlens=cu)
        per_depth[n_layers] = counts["n"]
        assert calls == [(int, 9)] * n_layers  # every layer got the plan's Python int
    assert per_depth[1] >= 1  # the plan's one read of max_len is counted
    assert per_depth[4] == per_depth[1]


def test_a_named_varlen_kernel_hands_masked_or_prefixed_batches_to_sdpa(monkeypatch):
    """varlen/flash cannot take a mask or a key/value prefix: such a batch goes to SDPA with its
    mask (it is not dropped); an unmasked bf16 packed batch stays on the kernel."""
    monkeypatch.setattr(attention_mod, "available_backends", lambda d: ["varlen", "sdpa"])
    valid = torch.tensor([[True, True, False]])[:, None, None, :]
    kw = dict(batch=1, device="cpu", dtype=torch.bfloat16, backend="varlen")
    masked = plan_attention(q_len=3, kv_len=3, attn_mask=valid, **kw)
    assert masked.backend == "sdpa" and torch.equal(masked.mask, valid)
    prefixed = plan_attention(q_len=2, kv_len=5, causal=True, **kw)
    assert prefixed.backend == "sdpa"
    assert torch.equal(prefixed.mask, torch.ones(2, 5, dtype=torch.bool).tril(3))  # end-aligned
    cu = torch.tensor([0, 2, 3], dtype=torch.int32)
    packed = plan_attention(q_len=3, kv_len=3, cu_seqlens=cu, **kw)
    assert (packed.backend, packed.max_len) == ("varlen", 2)
