"""Packing into variable-length batches (cu_seqlens), padded batches, dataset and data module."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_core.data.datamodule import TextDataModule
from lm_core.data.packing import PackedDataset, collate_single, pack_documents, pad_documents

EOS = 1000


def _docs(n=60, seed=0, max_len=50):
    rng = random.Random(seed)
    return [[rng.randrange(0, 999) for _ in range(rng.randint(0, max_len))] for _ in range(n)]


def _check_batches(batches, docs, budget, max_doc_len=None):
    """Shared invariants; returns the segments (1-D tensors) in order."""
    segs = []
    for b in batches:
        ids, cu = b["input_ids"], b["cu_seqlens"]
        assert ids.dtype == torch.long and ids.dim() == 2 and ids.shape[0] == 1
        assert cu.dtype == torch.int32 and cu[0] == 0 and cu[-1] == ids.shape[1]
        assert 0 < ids.shape[1] <= budget
        lens = cu[1:] - cu[:-1]
        assert (lens > 0).all() and (lens <= (max_doc_len or budget)).all()
        segs += [ids[0, s:e] for s, e in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)]
    stream = torch.cat([b["input_ids"][0] for b in batches])
    expected = [t for d in docs for t in (*d, EOS)]
    assert stream.tolist() == expected, "packing must reproduce doc0 EOS doc1 EOS ..."
    return segs


def test_pack_reproduces_docs_with_eos_after_each():
    docs = _docs()
    batches = pack_documents(docs, token_budget=64, eos_id=EOS)
    segs = _check_batches(batches, docs, 64)
    assert [s.tolist() for s in segs] == [d + [EOS] for d in docs]  # one segment per doc
    total = sum(len(d) + 1 for d in docs)
    assert len(batches) < 1.5 * total / 64  # greedy packing fills batches


def test_long_documents_cut_and_fill():
    docs = [[5] * 10, [7] * 300, [9] * 3]
    batches = pack_documents(docs, token_budget=64, eos_id=EOS, max_doc_len=32)
    segs = _check_batches(batches, docs, 64, max_doc_len=32)
    assert sum(len(s) for s in segs if s[0] == 7) == 301
    assert all(b["input_ids"].shape[1] == 64 for b in batches[:-1])  # no holes from the cut doc


def test_split_share_splits_about_that_share_deterministically():
    docs = _docs(n=2000, max_len=40)
    docs = [d + [3] for d in docs]  # every doc + EOS has >= 2 tokens
    batches = pack_documents(docs, 256, EOS, split_share=0.3, seed=7)
    segs = _check_batches(batches, docs, 256)
    n_split = len(segs) - len(docs)
    assert 0.26 < n_split / len(docs) < 0.34
    assert sum(int(s[-1] == EOS) for s in segs) == len(docs)  # EOS only at real doc ends
    again = pack_documents(docs, 256, EOS, split_share=0.3, seed=7)
    other = pack_documents(docs, 256, EOS, split_share=0.3, seed=8)
    assert all(
        torch.equal(a["cu_seqlens"], b["cu_seqlens"]) for a, b in zip(batches, again, strict=True)
    )
    assert any(
        not torch.equal(a["cu_seqlens"], b["cu_seqlens"])
        for a, b in zip(batches, other, strict=False)
    )


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="token_budget"):
        pack_documents([[1]], 0, EOS)
    with pytest.raises(ValueError, match="max_doc_len"):
        pack_documents([[1]], 8, EOS, max_doc_len=9)
    with pytest.raises(ValueError, match="split_share"):
        pack_documents([[1]], 8, EOS, split_share=1.5)


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(st.lists(st.integers(0, 998), max_size=40), min_size=1, max_size=25),
    budget=st.integers(1, 64),
    mdl_frac=st.floats(0.05, 1.0),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_pack_invariants_property(docs, budget, mdl_frac, share, seed):
    mdl = max(1, int(budget * mdl_frac))
    batches = pack_documents(docs, budget, EOS, split_share=share, seed=seed, max_doc_len=mdl)
    segs = _check_batches(batches, docs, budget, max_doc_len=mdl)
    assert sum(int(s[-1] == EOS) for s in segs) >= len(docs)


def test_pad_documents_masks():
    docs = [[1, 2, 3], list(range(10, 30)), [], [4]]
    batches = pad_documents(docs, seq_len=8, pad_id=77, eos_id=EOS, batch_size=3)
    assert [b["input_ids"].shape for b in batches] == [(3, 8), (1, 8)]
    ids = torch.cat([b["input_ids"] for b in batches])
    valid = torch.cat([b["valid"] for b in batches])
    assert valid.dtype == torch.bool
    assert ids[0].tolist() == [1, 2, 3, EOS, 77, 77, 77, 77]
    assert valid[0].tolist() == [True] * 4 + [False] * 4
    assert ids[1].tolist() == list(range(10, 18)) and valid[1].all()  # truncated, no EOS
    assert ids[2].tolist() == [EOS] + [77] * 7 and valid[2].sum() == 1
    assert ((ids == 77) == ~valid).all()


def test_packed_dataset_epochs_and_collate():
    docs = _docs(n=80)
    ds = PackedDataset(docs, 64, EOS, split_share=0.3, seed=3)
    e0, e1 = list(ds), list(ds)  # each new iteration is the next epoch
    ds.set_epoch(0)
    e0_again = list(ds)
    assert all(
        torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(e0, e0_again, strict=True)
    )
    assert len(e0) == len(e0_again) == ds.num_batches(0)
    assert (
        torch.cat([b["input_ids"][0] for b in e0]).tolist()
        != torch.cat([b["input_ids"][0] for b in e1]).tolist()
    )
    for batches in (e0, e1):  # same multiset of tokens, budget respected
        stream = torch.cat([b["input_ids"][0] for b in batches])
        assert stream.sort().values.tolist() == sorted(t for d in docs for t in (*d, EOS))
        assert all(b["input_ids"].shape[1] <= 64 for b in batches)
    val = PackedDataset(docs, 64, EOS, shuffle=False)
    assert [b["input_ids"].tolist() for b in val] == [b["input_ids"].tolist() for b in val]
    loader = torch.utils.data.DataLoader(val, batch_size=1, collate_fn=collate_single)
    first = next(iter(loader))
    assert first["input_ids"].shape[0] == 1 and first["cu_seqlens"].dtype == torch.int32


def test_datamodule_packed_bpe_and_padded(tmp_path):
    dm = TextDataModule(
        "shakespeare", tokenizer="bpe", bpe_vocab_size=400, token_budget=256, max_chars=60_000
    )
    dm.setup("fit")
    tok = dm.tokenizer
    assert tok.vocab_size == 400 and len(dm.train_ids) > 5 and len(dm.val_ids) > 5
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[1] <= 256 and batch["input_ids"].max() < tok.vocab_size
    v1 = [b["input_ids"] for b in dm.val_dataloader()]
    v2 = [b["input_ids"] for b in dm.val_dataloader()]
    assert len(v1) == len(v2) and all(torch.equal(a, b) for a, b in zip(v1, v2, strict=True))

    (tmp_path / "t.jsonl").write_text("".join(f'{{"text": "doc {i} text"}}\n' for i in range(200)))
    dm = TextDataModule(str(tmp_path / "t.jsonl"), packed=False, token_budget=16, batch_size=4)
    dm.setup()
    assert len(dm.val_ids) > 0 and len(dm.train_ids) + len(dm.val_ids) == 200
    b = next(iter(dm.train_dataloader()))
    assert b["input_ids"].shape == (4, 16) and b["valid"].sum() > 4
    with pytest.raises(ValueError, match="tokenizer"):
        TextDataModule("shakespeare", tokenizer="char")
