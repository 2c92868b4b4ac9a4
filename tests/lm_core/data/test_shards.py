"""Shard folders (`lm-core prepare`): memory-mapped documents equal to tokenising in memory,
packed batches equal to those of the in-memory lists, each rank its own share, the tokenizer
tied to the folder by its hash."""

import json

import numpy as np
import pytest
import torch

from lm_core.cli import main
from lm_core.data import packing
from lm_core.data.datamodule import TextDataModule
from lm_core.data.packing import PackedDataset
from lm_core.data.shards import MANIFEST, ShardDocs, ShardError, check_tokenizer, write_shards
from lm_core.data.tokenizers import BPETokenizer, ByteTokenizer, tokenizer_hash

DOCS = [f"document {i}: " + "abc " * (i % 7) + "end" for i in range(40)]


@pytest.fixture
def folder(tmp_path):
    write_shards(tmp_path / "sh", {"train": DOCS[:30], "val": DOCS[30:]}, ByteTokenizer(),
                 shard_tokens=100)  # fmt: skip
    return tmp_path / "sh"


def test_shards_hold_the_tokenised_documents_in_order(folder):
    m = json.loads((folder / MANIFEST).read_text())
    assert m["tokenizer"]["sha256"] == tokenizer_hash(ByteTokenizer())
    assert m["tokenizer"]["vocab_size"] == 259 and m["dtype"] == "uint16"
    assert len(m["splits"]["train"]["shards"]) > 3  # 100-token shards: several
    docs = ShardDocs(folder, "train")
    tok = ByteTokenizer()
    assert len(docs) == 30 and m["splits"]["train"]["tokens"] == sum(docs.lengths)
    for i, text in enumerate(DOCS[:30]):
        assert docs[i].dtype == torch.long and docs[i].tolist() == tok.encode(text)
    assert [ShardDocs(folder, "val")[i].tolist() for i in range(10)] == tok.encode_batch(DOCS[30:])


def test_packed_batches_from_shards_equal_those_from_lists(folder):
    tok = ByteTokenizer()
    kw = dict(token_budget=64, eos_id=tok.eos_id, split_share=0.3, seed=5)
    a = list(PackedDataset(ShardDocs(folder, "train"), **kw))
    b = list(PackedDataset(tok.encode_batch(DOCS[:30]), **kw))
    assert len(a) == len(b) > 5
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["input_ids"], y["input_ids"])
        assert torch.equal(x["cu_seqlens"], y["cu_seqlens"])


def test_each_rank_reads_its_own_equal_share(folder, monkeypatch):
    tok = ByteTokenizer()
    whole = list(PackedDataset(ShardDocs(folder, "train"), 64, tok.eos_id, seed=1))
    shares = []
    for rank in (0, 1):  # as torch.distributed would tell each of 2 processes
        monkeypatch.setattr(packing, "_rank_world", lambda r=rank: (r, 2))
        ds = PackedDataset(ShardDocs(folder, "train"), 64, tok.eos_id, seed=1, by_rank=True)
        shares.append(list(ds))
    assert len(shares[0]) == len(shares[1]) == len(whole) // 2
    for r in (0, 1):
        for got, want in zip(shares[r], whole[r::2], strict=False):
            assert torch.equal(got["input_ids"], want["input_ids"])


def test_another_tokenizer_is_refused_in_one_line(folder):
    bpe = BPETokenizer.train(DOCS, 300)
    with pytest.raises(ShardError) as e:
        check_tokenizer(folder, bpe)
    msg = str(e.value)
    assert "manifest.json" in msg and "another tokenizer" in msg and "\n" not in msg
    dm = TextDataModule(train=str(folder), token_budget=64)
    dm.set_tokenizer(bpe)  # e.g. from init_from
    with pytest.raises(ShardError, match="lm-core prepare"):
        dm.setup("fit")


def test_data_module_reads_a_shard_folder(folder):
    dm = TextDataModule(train=str(folder), token_budget=64, num_workers=0)
    dm.setup("fit")
    assert isinstance(dm.tokenizer, ByteTokenizer) and len(dm.val_ids) == 10
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and int(batch["cu_seqlens"][-1]) <= 64
    val = list(dm.val_dataloader())
    n_val = sum(int((b["input_ids"] == 256).sum()) for b in val)
    assert n_val == 10  # every val document once, with its EOS


def test_prepare_command_splits_like_fit_and_fit_reads_the_folder(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS * 3))
    out = tmp_path / "sh"
    assert main(["prepare", "--data.train", str(corpus), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "sha256" in printed
    m = json.loads((out / MANIFEST).read_text())
    dm = TextDataModule(train=str(corpus), token_budget=64)
    train, val = dm._texts()  # what fit holds out
    assert (m["splits"]["train"]["docs"], m["splits"]["val"]["docs"]) == (len(train), len(val))
    assert np.all(ShardDocs(out, "val").lengths == [len(v.encode()) for v in val])


def test_prepare_with_too_few_documents_names_data_val(tmp_path, capsys):
    (tmp_path / "one.txt").write_text("a single short document")
    rc = main(["prepare", "--data.train", str(tmp_path / "one.txt"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--data.val" in err and len(err.strip().splitlines()) == 1


def test_fit_on_a_folder_with_another_tokenizer_is_one_line(folder, tmp_path, capsys):
    BPETokenizer.train(DOCS, 300).save(tmp_path / "bpe")
    rc = main(["fit", "--data.train", str(folder), "--data.tokenizer", str(tmp_path / "bpe"),
               "--data.token_budget", "64", "--model.max_seq_len", "64",
               "--out_dir", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "another tokenizer" in err[0] and MANIFEST in err[0]
