"""LLaDA-format import/export: identical logits, sharded files, refusals."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from lm_core import ModelConfig, Transformer
from lm_core.checkpoint import save_checkpoint
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.text.llada import export_llada, is_llada_dir, llada_to_lm_name, load_any, load_llada


def _model(tie):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=272, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                      ffn_hidden=48, max_seq_len=64, rope_theta=500000.0, tie_embeddings=tie)  # fmt: skip
    return Transformer(cfg).eval()


@pytest.mark.parametrize("tie", [True, False])
def test_roundtrip_identical_logits(tmp_path, tie):
    m = _model(tie)
    export_llada(m, tmp_path, mask_id=258, eos_id=256, pad_id=257, vocab_size=259)
    names = set(load_file(str(tmp_path / "model.safetensors")))
    assert "model.transformer.blocks.1.ff_proj.weight" in names
    assert ("model.transformer.ff_out.weight" in names) == (not tie)
    loaded, meta = load_llada(tmp_path)
    assert loaded.cfg.vocab_size == 272 and meta["vocab_size"] == 259  # embedding_size is used
    assert meta["mask_id"] == 258 and meta["eos_id"] == 256
    x = torch.randint(0, 259, (2, 20))
    assert torch.equal(m(x), loaded(x))
    assert is_llada_dir(tmp_path)


def test_sharded_checkpoint_and_dtype(tmp_path):
    m = _model(False)
    export_llada(m, tmp_path, mask_id=5)
    state = load_file(str(tmp_path / "model.safetensors"))
    (tmp_path / "model.safetensors").unlink()
    names = sorted(state)
    half = len(names) // 2
    shards = {"a.safetensors": names[:half], "b.safetensors": names[half:]}
    for f, ns in shards.items():
        save_file({n: state[n] for n in ns}, str(tmp_path / f))
    index = {"weight_map": {n: f for f, ns in shards.items() for n in ns}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    loaded, meta = load_llada(tmp_path, dtype=torch.float64)
    assert meta["mask_id"] == 5 and loaded.tok_emb.weight.dtype == torch.float64
    x = torch.randint(0, 200, (1, 9))
    assert torch.allclose(m(x).double(), loaded(x), atol=1e-5)


def test_name_mapping():
    assert (
        llada_to_lm_name("model.transformer.blocks.3.attn_out.weight")
        == "blocks.3.attn.o_proj.weight"
    )
    assert llada_to_lm_name("model.transformer.blocks.0.up_proj.weight") == "blocks.0.mlp.up.weight"
    assert llada_to_lm_name("model.transformer.wte.weight") == "tok_emb.weight"
    assert llada_to_lm_name("lm_head.weight") is None


@pytest.mark.parametrize(
    "patch, word",
    [({"include_bias": True}, "include_bias"), ({"layer_norm_type": "default"}, "layer_norm_type"),
     ({"alibi": True}, "alibi"), ({"d_model": None}, "d_model")],
)  # fmt: skip
def test_unsupported_configs_are_refused(tmp_path, patch, word):
    export_llada(_model(True), tmp_path, mask_id=5)
    cfg = json.loads((tmp_path / "config.json").read_text())
    for k, v in patch.items():
        if v is None:
            del cfg[k]
        else:
            cfg[k] = v
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=word):
        load_llada(tmp_path)


def test_unexpected_or_missing_tensors(tmp_path):
    m = _model(True)
    export_llada(m, tmp_path, mask_id=5)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["model.transformer.blocks.0.q_norm.weight"] = torch.ones(8)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="unexpected tensor"):
        load_llada(tmp_path)
    del state["model.transformer.blocks.0.q_norm.weight"]
    del state["model.transformer.blocks.1.up_proj.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="missing"):
        load_llada(tmp_path)


def test_load_any_reads_both_formats(tmp_path):
    m = _model(True)
    save_checkpoint(tmp_path / "lm", m, ByteTokenizer())
    export_llada(m, tmp_path / "llada", mask_id=258)
    a, tok, meta = load_any(tmp_path / "lm")
    b, tok2, meta2 = load_any(tmp_path / "llada")
    assert tok is not None and tok2 is None and meta2["format"] == "llada"
    x = torch.randint(0, 259, (1, 7))
    assert torch.equal(a(x), b(x))
