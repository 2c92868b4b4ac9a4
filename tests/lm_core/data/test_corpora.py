"""Corpora: built-in real texts with fixed disjoint splits, file specs and their errors."""

import gzip
import json

import pytest

from lm_core.data.corpora import CorpusError, chunk_text, holdout, load_corpus, split_of


def test_shakespeare_splits_nonempty_and_disjoint():
    parts = {s: load_corpus("shakespeare", s) for s in ("train", "val", "test")}
    assert len(parts["train"]) > 400 and 10 <= len(parts["val"]) < len(parts["train"]) / 10
    assert len(parts["test"]) >= 10
    assert not set(parts["train"]) & set(parts["val"])
    assert not set(parts["train"]) & set(parts["test"])
    assert not set(parts["val"]) & set(parts["test"])
    text = "".join(parts["train"])
    assert "To be, or not to be" in "".join(sum(parts.values(), []))
    assert "Gutenberg" not in text and 2_000_000 < len(text) < 3_200_000
    assert max(len(d) for d in parts["train"]) < 20_000  # documents of a few KB
    assert load_corpus("shakespeare", "val") == parts["val"]  # deterministic


def test_kjv_chapters():
    train, val = load_corpus("kjv"), load_corpus("kjv", "val")
    assert len(train) + len(val) + len(load_corpus("kjv", "test")) == 1189
    assert not set(train) & set(val)
    allv = "".join(train + val)
    assert "In the beginning God created the heaven and the earth." in "".join(
        load_corpus(["kjv"], "train") + load_corpus("kjv", "val") + load_corpus("kjv", "test")
    )
    assert "1. In the" not in allv and "[" not in allv  # verse numbers, brackets removed


def test_stdlib_loads_without_tests():
    docs = load_corpus("stdlib")
    assert len(docs) > 300
    assert any("def dumps(" in d for d in docs)  # json/__init__.py
    assert not any("import unittest\n" in d and "class Test" in d for d in docs[:50])
    assert not set(docs) & set(load_corpus("stdlib", "val"))


def test_split_rule_is_fixed():
    assert split_of("hamlet/0001") == split_of("hamlet/0001")
    shares = [split_of(f"doc{i}") for i in range(4000)]
    assert 0.03 < shares.count("val") / 4000 < 0.07
    assert 0.03 < shares.count("test") / 4000 < 0.07
    docs = [f"document number {i}" for i in range(500)]
    assert not set(holdout(docs, "train")) & set(holdout(docs, "val"))


def test_txt_files_glob_and_large_file_chunked(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\n")
    (tmp_path / "b.txt").write_text("second doc\n")
    big = "\n\n".join(f"paragraph {i} " + "x" * 200 for i in range(600))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "big.txt.gz").write_bytes(gzip.compress(big.encode()))
    assert load_corpus(str(tmp_path / "*.txt")) == ["first doc\n", "second doc\n"]
    docs = load_corpus([str(tmp_path / "a.txt"), str(tmp_path / "sub" / "big.txt.gz")])
    assert docs[0] == "first doc\n" and len(docs) > 20
    assert all(len(d) < 5000 for d in docs[1:])
    assert "paragraph 599" in docs[-1]


def test_chunk_text_keeps_all_paragraphs():
    text = "\n\n".join(f"p{i}" * 50 for i in range(100))
    pieces = chunk_text(text, target=1000)
    assert len(pieces) > 5
    assert "\n\n".join(p.strip("\n") for p in pieces) == text


def test_jsonl_default_and_named_field(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(
        json.dumps({"text": "one", "body": "uno"})
        + "\n\n"
        + json.dumps({"text": "two", "body": "dos"})
        + "\n"
    )
    assert load_corpus(str(f)) == ["one", "two"]
    assert load_corpus(f"{f}:body") == ["uno", "dos"]


def test_errors_name_path_and_expectation(tmp_path):
    with pytest.raises(CorpusError, match=r"missing\.txt: file not found"):
        load_corpus(str(tmp_path / "missing.txt"))
    with pytest.raises(CorpusError, match=r"nothing_\*\.txt: expected the glob to match"):
        load_corpus(str(tmp_path / "nothing_*.txt"))
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"content": "x"}) + "\n")
    with pytest.raises(CorpusError, match=r"d\.jsonl:2: expected a field 'text'.*content"):
        load_corpus(str(f))
    with pytest.raises(CorpusError, match="'body'"):
        load_corpus(f"{f}:body")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(CorpusError, match=r"bad\.jsonl:1: expected one JSON object"):
        load_corpus(str(tmp_path / "bad.jsonl"))
    (tmp_path / "empty.txt").write_text("  \n\n")
    with pytest.raises(CorpusError, match="at least one non-empty document"):
        load_corpus(str(tmp_path / "empty.txt"))
    with pytest.raises(CorpusError, match="split"):
        load_corpus("shakespeare", "dev")
    assert issubclass(CorpusError, ValueError)
