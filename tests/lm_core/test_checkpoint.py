"""lm_core checkpoints: roundtrip, atomic writes, corrupt files, tokenizer/vocabulary mismatch."""

from __future__ import annotations

import json

import pytest
import torch

from lm_core.checkpoint import (
    CheckpointError,
    atomic_write_file,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
)
from lm_core.config import ModelConfig
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.nn.transformer import Transformer


def model(vocab: int = 259, **kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=vocab, d_model=32, n_layers=1, n_heads=2, **kw))


@pytest.mark.parametrize("tie", [True, False])
def test_roundtrip(tmp_path, tie):
    m, tok = model(tie_embeddings=tie), ByteTokenizer()
    save_checkpoint(tmp_path / "ck", m, tok, objective="masked", extra={"step": 3})
    loaded, tok2, meta = load_checkpoint(tmp_path / "ck")
    assert meta["mask_id"] == tok.mask_id == 258 and meta["extra"] == {"step": 3}
    assert tok2.encode("héllo") == tok.encode("héllo")
    ids = torch.randint(0, 259, (1, 9))
    torch.testing.assert_close(loaded(ids), m(ids))
    assert not loaded.training


def test_failed_write_leaves_no_partial_dir_and_keeps_the_old_one(tmp_path):
    m = model()
    save_checkpoint(tmp_path / "ck", m, ByteTokenizer())
    before = (tmp_path / "ck" / "model.safetensors").read_bytes()

    class Broken(ByteTokenizer):
        def save(self, d):
            d.mkdir(parents=True, exist_ok=True)
            (d / "partial").write_text("x")
            raise OSError("disk full")

    with torch.no_grad():
        m.tok_emb.weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ck", m, Broken())
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "new", m, Broken())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temp or partial dirs
    assert (tmp_path / "ck" / "model.safetensors").read_bytes() == before


def test_corrupt_or_incomplete_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "ck", model(), ByteTokenizer())
    weights = tmp_path / "ck" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt"):
        load_checkpoint(tmp_path / "ck")
    save_checkpoint(tmp_path / "ck2", model(), ByteTokenizer())
    (tmp_path / "ck2" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is corrupt"):
        load_checkpoint(tmp_path / "ck2")
    (tmp_path / "ck2" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path / "ck2")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_weights_that_do_not_match_the_config(tmp_path):
    save_checkpoint(tmp_path / "ck", model(), ByteTokenizer())
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    meta["model"]["n_layers"] = 2
    (tmp_path / "ck" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "ck")


def test_vocabulary_mismatch(tmp_path):
    save_checkpoint(tmp_path / "ck", model(vocab=100), ByteTokenizer())  # 259 ids > 100
    with pytest.raises(CheckpointError, match="vocab_size"):
        load_checkpoint(tmp_path / "ck")


def test_atomic_write_file_renames_a_whole_readable_file_and_cleans_up_after_a_failure(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "a.txt", "one\n")
    assert path.read_text() == "one\n" and (path.stat().st_mode & 0o777) == 0o644

    def fails(tmp):
        tmp.write_text("half")
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        atomic_write_file(path, fails)
    assert path.read_text() == "one\n"  # the old file is untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]  # no temporary left
