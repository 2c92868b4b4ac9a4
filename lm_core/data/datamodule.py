"""Lightning data module: corpus -> tokenizer -> packed (or padded) batches.

Batches are the dicts of :mod:`lm_core.data.packing`: packed ``{"input_ids" [1, T],
"cu_seqlens" [n + 1]}`` or padded ``{"input_ids" [B, L], "valid" [B, L]}``.
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from lm_core.data.corpora import load_corpus, train_val
from lm_core.data.packing import PackedDataset, collate_single, pad_documents
from lm_core.data.shards import ShardDocs, check_tokenizer, folder_tokenizer, is_shard_dir
from lm_core.data.tokenizers import resolve_tokenizer


class TextDataModule(L.LightningDataModule):
    """Text corpora as packed variable-length batches (iLLaDA) or padded batches (baseline).

    Args:
        train: training corpus: a built-in name (``shakespeare``, ``kjv``, ``stdlib``), a path or
            glob (``.txt``, ``.jsonl``, ``path.jsonl:field``), or a list of them; or a shard folder
            written by ``lm-core prepare`` (:mod:`lm_core.data.shards`: memory-mapped, read
            by each rank for its share of the batches; its ``val`` split validates unless
            ``val`` is given, and its tokenizer is used).
        val: validation corpus in the same forms. None: the fixed ``val`` split of a built-in
            ``train``, or for files a fixed 5 % of the training documents held out by a hash of their
            text (:func:`lm_core.data.corpora.split_of`); the rest is trained on.
        tokenizer: ``byte`` (259 ids), ``bpe`` (byte-level BPE trained on the train corpus in
            ``setup``), a tokenizer folder, or a pretrained HuggingFace ``tokenizer.json`` file
            (such as LLaDA's). With a shard folder: default the folder's; another one is refused.
        special_tokens: for a ``tokenizer.json`` file, ``{mask, eos, pad}`` token strings (default:
            found by their usual names).
        bpe_vocab_size: total ids of the BPE tokenizer, specials included.
        token_budget: tokens per packed batch (packed), or the row length ``seq_len`` (padded).
        packed: pack documents with ``cu_seqlens`` (True) or pad one document per row (False).
        batch_size: rows per padded batch (unused when packed).
        split_share: share of training documents split in two at a random point (iLLaDA: 0.3).
            Validation never splits.
        seed: seeds the document order each epoch, the splits and the padded shuffle.
        num_workers: DataLoader worker processes (0 loads in the main process).
        max_train_docs: keep only the first N training documents (None: all), for quick runs.
        max_chars: keep training documents until this many characters (None: no cap); the same
            cap applies to the validation documents.
        max_doc_len: longest packed segment; longer documents are cut (None: ``token_budget``).
    """

    def __init__(
        self,
        train: str | list[str] = "shakespeare",
        val: str | list[str] | None = None,
        tokenizer: str = "byte",
        special_tokens: dict[str, str] | None = None,
        bpe_vocab_size: int = 4096,
        token_budget: int = 2048,
        packed: bool = True,
        batch_size: int = 8,
        split_share: float = 0.0,
        seed: int = 0,
        num_workers: int = 0,
        max_train_docs: int | None = None,
        max_chars: int | None = None,
        max_doc_len: int | None = None,
    ) -> None:
        super().__init__()
        if tokenizer not in ("byte", "bpe") and not Path(tokenizer).exists():
            raise ValueError(
                "tokenizer: expected byte, bpe, a tokenizer folder or a tokenizer.json file, "
                f"got {tokenizer!r} (no such path)"
            )
        for name, v in (("token_budget", token_budget), ("batch_size", batch_size)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        self.train_spec, self.val_spec = train, val
        self.tokenizer_kind, self.bpe_vocab_size = tokenizer, bpe_vocab_size
        self.special_tokens = special_tokens
        self.token_budget, self.packed, self.batch_size = token_budget, packed, batch_size
        self.split_share, self.seed, self.num_workers = split_share, seed, num_workers
        self.max_train_docs, self.max_chars, self.max_doc_len = (
            max_train_docs,
            max_chars,
            max_doc_len,
        )
        self.tokenizer = None
        self.train_ids: list[list[int]] | ShardDocs | None = None
        self.val_ids: list[list[int]] | ShardDocs | None = None

    def set_tokenizer(self, tokenizer) -> None:
        """Use a given tokenizer (e.g. from a checkpoint) instead of building one in setup."""
        self.tokenizer = tokenizer

    def _texts(self) -> tuple[list[str], list[str]]:
        train, val = train_val(self.train_spec, self.val_spec)
        if self.max_train_docs is not None:
            train = train[: self.max_train_docs]
        return _cap_chars(train, self.max_chars), _cap_chars(val, self.max_chars)

    def setup(self, stage: str | None = None) -> None:
        """Load the corpora, build the tokenizer (unless given) and tokenize; runs once."""
        if self.train_ids is not None:
            return
        if is_shard_dir(self.train_spec):
            return self._setup_shards(self.train_spec)
        train, val = self._texts()
        if self.tokenizer is None:
            self.tokenizer = resolve_tokenizer(
                self.tokenizer_kind, train, self.bpe_vocab_size, self.special_tokens
            )
        self.train_ids = self.tokenizer.encode_batch(train)
        self.val_ids = self.tokenizer.encode_batch(val)

    def _setup_shards(self, folder: str) -> None:
        """A ``lm-core prepare`` folder: its tokenizer (or the given one, if it is the same)."""
        if self.tokenizer is None and self.tokenizer_kind not in ("byte", "bpe"):
            self.tokenizer = resolve_tokenizer(self.tokenizer_kind, None, None, self.special_tokens)
        if self.tokenizer is None:
            self.tokenizer = folder_tokenizer(folder)
        check_tokenizer(folder, self.tokenizer)
        self.train_ids = ShardDocs(folder, "train", self.max_train_docs)
        if self.val_spec is None:
            self.val_ids = ShardDocs(folder, "val")
        elif is_shard_dir(self.val_spec):
            check_tokenizer(self.val_spec, self.tokenizer)
            self.val_ids = ShardDocs(self.val_spec, "val")
        else:
            val = _cap_chars(load_corpus(self.val_spec, "val"), self.max_chars)
            self.val_ids = self.tokenizer.encode_batch(val)

    def _pin(self) -> bool:
        """Pinned host memory when the trainer runs on CUDA."""
        trainer = getattr(self, "trainer", None)
        return bool(trainer is not None and trainer.strategy.root_device.type == "cuda")

    def _loader(self, ids, train: bool) -> DataLoader:
        tok = self.tokenizer
        shards = isinstance(ids, ShardDocs)
        if self.packed:
            ds = PackedDataset(
                ids,
                self.token_budget,
                tok.eos_id,
                self.split_share if train else 0.0,
                self.seed,
                shuffle=train,
                max_doc_len=self.max_doc_len,
                by_rank=train and shards,
            )
            return DataLoader(
                ds,
                batch_size=None,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                pin_memory=self._pin(),
            )
        if train:  # a fixed shuffle of documents; the DataLoader then shuffles batches per epoch
            ids = list(ids)
            random.Random(self.seed).shuffle(ids)
        batches = pad_documents(ids, self.token_budget, tok.pad_id, tok.eos_id, self.batch_size)
        gen = torch.Generator().manual_seed(self.seed) if train else None
        return DataLoader(
            batches,
            batch_size=1,
            shuffle=train,
            generator=gen,
            collate_fn=collate_single,
            num_workers=self.num_workers,
            pin_memory=self._pin(),
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled packed (or padded) training batches, reshuffled every epoch."""
        self.setup("fit")
        return self._loader(self.train_ids, train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order, the same every epoch (no random splits)."""
        self.setup("validate")
        return self._loader(self.val_ids, train=False)


def _cap_chars(docs: list[str], max_chars: int | None) -> list[str]:
    """The leading documents whose total length stays within ``max_chars`` (at least one)."""
    if max_chars is None:
        return docs
    out, total = [], 0
    for d in docs:
        if out and total + len(d) > max_chars:
            break
        out.append(d)
        total += len(d)
    return out
