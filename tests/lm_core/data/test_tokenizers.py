"""Tokenizers: roundtrips, reserved special ids, save/load without pickle."""

import json

import pytest

from lm_core.data.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    TokenizerError,
    build_tokenizer,
    load_tokenizer,
)

TEXTS = [
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n",
    "def f(x):\n    return x * 2  # double\n\n\tindented = True\n",
    "Ünïcödé: naïve café, 日本語のテキスト, emoji 🙂🚀, Ελληνικά.\n",
] * 30
SAMPLE = "Héllo  wörld!\n\t日本語 🙂 <|eos|> trailing spaces   \n\n"


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(TEXTS, vocab_size=400)


def test_byte_layout_and_roundtrip_unicode():
    tok = ByteTokenizer()
    assert (tok.eos_id, tok.pad_id, tok.mask_id, tok.vocab_size) == (256, 257, 258, 259)
    ids = tok.encode(SAMPLE)
    assert ids == list(SAMPLE.encode("utf-8")) and max(ids) < 256
    assert tok.decode(ids) == SAMPLE
    assert tok.decode(ids + [tok.eos_id, tok.pad_id, tok.mask_id]) == SAMPLE
    shown = tok.decode([104, 105, tok.mask_id, 33, tok.eos_id], skip_special=False)
    assert shown == "hi<|mask|>!<|eos|>"


def test_byte_decode_invalid_utf8_replaced_and_bad_id_rejected():
    tok = ByteTokenizer()
    assert tok.decode([0xE6, 0x97]) == "\ufffd"  # a cut multi-byte character
    with pytest.raises(TokenizerError, match="ids"):
        tok.decode([300])


def test_bpe_specials_reserved_and_distinct(bpe):
    ids = {bpe.eos_id, bpe.pad_id, bpe.mask_id}
    assert (bpe.eos_id, bpe.pad_id, bpe.mask_id) == (0, 1, 2) and len(ids) == 3
    assert 259 < bpe.vocab_size <= 400
    enc = bpe.encode(SAMPLE)
    assert not ids & set(enc), "special ids must never come out of encoding text"
    assert len(enc) < len(SAMPLE.encode("utf-8"))  # merges were learned
    assert bpe.decode(enc) == SAMPLE


def test_bpe_decode_skip_special(bpe):
    enc = bpe.encode("question")
    assert bpe.decode(enc + [bpe.eos_id, bpe.mask_id]) == "question"
    assert bpe.decode(enc + [bpe.mask_id], skip_special=False) == "question<|mask|>"
    with pytest.raises(TokenizerError, match="ids"):
        bpe.decode([bpe.vocab_size])


def test_bpe_save_load_roundtrip(bpe, tmp_path):
    d = bpe.save(tmp_path / "a" / "tok")
    assert (d / "tokenizer.json").is_file()
    meta = json.loads((d / "tokenizer_meta.json").read_text())
    assert meta["kind"] == "bpe" and meta["mask_id"] == bpe.mask_id
    tok = load_tokenizer(d)
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == bpe.vocab_size
    assert (tok.eos_id, tok.pad_id, tok.mask_id) == (bpe.eos_id, bpe.pad_id, bpe.mask_id)
    assert tok.encode(SAMPLE) == bpe.encode(SAMPLE)
    assert tok.encode_batch(TEXTS[:3]) == [bpe.encode(t) for t in TEXTS[:3]]


def test_load_byte_and_errors(tmp_path):
    tok = load_tokenizer(ByteTokenizer().save(tmp_path / "byte"))
    assert isinstance(tok, ByteTokenizer) and tok.decode(tok.encode(SAMPLE)) == SAMPLE
    with pytest.raises(TokenizerError, match="tokenizer_meta.json"):
        load_tokenizer(tmp_path / "nothing")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "tokenizer_meta.json").write_text('{"kind": "wordpiece"}')
    with pytest.raises(TokenizerError, match="kind"):
        load_tokenizer(tmp_path / "odd")
    (tmp_path / "nojson").mkdir()
    (tmp_path / "nojson" / "tokenizer_meta.json").write_text('{"kind": "bpe"}')
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        load_tokenizer(tmp_path / "nojson")


def test_build_tokenizer_factory():
    assert isinstance(build_tokenizer("byte"), ByteTokenizer)
    assert isinstance(build_tokenizer("bpe", TEXTS, 300), BPETokenizer)
    with pytest.raises(ValueError, match="kind"):
        build_tokenizer("char")
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer("bpe", TEXTS, None)
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer("bpe", TEXTS, 100)
    with pytest.raises(ValueError, match="texts"):
        build_tokenizer("bpe", None, 300)
