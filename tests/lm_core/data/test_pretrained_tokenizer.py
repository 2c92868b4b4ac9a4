"""A pretrained HuggingFace tokenizer.json (such as LLaDA's) named instead of training BPE:
special ids found by name, a saved copy loads as the same tokenizer (same hash), and a
vocabulary larger than the model's is one line naming the file."""

import json

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lm_core.cli import main
from lm_core.config import ConfigError, ModelConfig
from lm_core.data.datamodule import TextDataModule
from lm_core.data.tokenizers import (
    PretrainedTokenizer,
    TokenizerError,
    load_tokenizer,
    resolve_tokenizer,
    tokenizer_hash,
)
from lm_core.train.setup import resolve_model

TEXTS = ["the quick brown fox jumps over the lazy dog"] * 20


def _hf_file(path, specials):
    """A byte-level BPE tokenizer.json with LLaDA's kind of special-token names."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(TEXTS, trainer=trainer)
    tok.save(str(path))
    return path


def test_llada_style_specials_are_found_by_name_and_survive_save(tmp_path):
    f = _hf_file(tmp_path / "tokenizer.json", ["<|endoftext|>", "<|eot_id|>", "<|mdm_mask|>"])
    tok = resolve_tokenizer(str(f))
    assert isinstance(tok, PretrainedTokenizer) and tok.kind == "hf"
    assert (tok.eos_id, tok.mask_id, tok.pad_id) == (0, 2, 0)  # PAD falls back to EOS
    ids = tok.encode("the lazy fox")
    assert tok.decode(ids) == "the lazy fox" and all(i > 2 for i in ids)
    assert tok.encode("<|eot_id|>") == [1]  # special text is the special token here
    tok.save(tmp_path / "saved")
    back = load_tokenizer(tmp_path / "saved")
    assert isinstance(back, PretrainedTokenizer) and back.encode("the lazy fox") == ids
    assert tokenizer_hash(back) == tokenizer_hash(tok)
    named = resolve_tokenizer(str(f), special_tokens={"eos": "<|eot_id|>"})
    assert named.eos_id == 1 and tokenizer_hash(named) != tokenizer_hash(tok)


def test_a_file_without_a_mask_token_is_one_line(tmp_path):
    f = _hf_file(tmp_path / "tokenizer.json", ["<|endoftext|>"])
    with pytest.raises(TokenizerError) as e:
        resolve_tokenizer(str(f))
    msg = str(e.value)
    assert str(f) in msg and "MASK" in msg and "--mask-token" in msg and "\n" not in msg
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="bad.json: not a HuggingFace tokenizer"):
        resolve_tokenizer(str(tmp_path / "bad.json"))


def test_vocabulary_larger_than_the_model_config_names_the_file(tmp_path):
    f = _hf_file(tmp_path / "tokenizer.json", ["<|endoftext|>", "<|mdm_mask|>"])
    tok = resolve_tokenizer(str(f))
    cfg = ModelConfig(vocab_size=tok.vocab_size - 10, d_model=32, n_layers=1, n_heads=2)
    with pytest.raises(ConfigError) as e:
        resolve_model(cfg, tok, 64)
    msg = str(e.value)
    assert "model.vocab_size" in msg and str(f) in msg and str(tok.vocab_size) in msg
    padded = ModelConfig(vocab_size=tok.vocab_size + 64, d_model=32, n_layers=1, n_heads=2)
    assert resolve_model(padded, tok, 64).vocab_size == tok.vocab_size + 64  # LLaDA pads rows


def test_prepare_and_the_data_module_take_a_tokenizer_file(tmp_path, capsys):
    f = _hf_file(tmp_path / "tokenizer.json", ["<|endoftext|>", "<|mdm_mask|>"])
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        "".join(json.dumps({"text": f"{t} {i}"}) + "\n" for i, t in enumerate(TEXTS * 3))
    )
    assert main(["prepare", "--data.train", str(corpus), "--tokenizer", str(f),
                 "--out", str(tmp_path / "sh")]) == 0  # fmt: skip
    m = json.loads((tmp_path / "sh" / "manifest.json").read_text())
    tok = resolve_tokenizer(str(f))
    assert m["tokenizer"]["kind"] == "hf" and m["tokenizer"]["sha256"] == tokenizer_hash(tok)
    dm = TextDataModule(train=str(tmp_path / "sh"), token_budget=64)
    dm.setup("fit")
    assert tokenizer_hash(dm.tokenizer) == tokenizer_hash(tok)
    direct = TextDataModule(train=str(corpus), tokenizer=str(f), token_budget=64)
    direct.setup("fit")  # named in fit without prepare: the same ids, no BPE training
    assert [dm.train_ids[i].tolist() for i in range(3)] == direct.train_ids[:3]
