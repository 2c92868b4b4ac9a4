"""A corpus tokenised once into memory-mapped shards (``lm-core prepare``), read by training.

Folder layout (written whole: a temporary sibling folder, then renamed)::

    DIR/manifest.json       {"format": "lm_core-shards", "version": 1, "dtype": "uint16"|"uint32",
                             "tokenizer": {"sha256", "kind", "vocab_size", "eos_id", "pad_id",
                             "mask_id"}, "source": {...},
                             "splits": {"train": {"docs", "tokens", "shards": [NAME, ...]},
                                        "val": {...}}}
    DIR/tokenizer/          the tokenizer (lm_core.data.tokenizers layout)
    DIR/train-00000.tokens  every document's ids back to back (no EOS), raw ``dtype`` values
    DIR/train-00000.docs.npy  int64 [n_docs + 1] offsets of the documents into that array
    DIR/val-00000.tokens ...

A document never spans two shards; a shard holds at most ``shard_tokens`` tokens (or one longer
document). :class:`ShardDocs` opens a split with ``numpy.memmap``: only the offsets are read up
front, a document's tokens when it is asked for, so DataLoader workers share the page cache
instead of each holding the corpus. ``tokenizer.sha256`` (:func:`tokenizer_hash`) ties the
folder to its tokenizer: :func:`check_tokenizer` refuses another one in one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from lm_core.data.tokenizers import load_tokenizer, tokenizer_hash
from lm_core.outputs import atomic_write_dir

MANIFEST = "manifest.json"
FORMAT = "lm_core-shards"
ENCODE_BATCH = 256
"""Documents per ``encode_batch`` call while preparing."""


class ShardError(ValueError):
    """A shard folder is missing, corrupt or was made with another tokenizer; one line."""


def is_shard_dir(spec) -> bool:
    """True when ``spec`` is a folder holding a shard ``manifest.json``."""
    return isinstance(spec, str | Path) and (Path(spec) / MANIFEST).is_file()


def _tokenizer_record(tok) -> dict:
    return {
        "sha256": tokenizer_hash(tok), "kind": tok.kind, "vocab_size": tok.vocab_size,
        "eos_id": tok.eos_id, "pad_id": tok.pad_id, "mask_id": tok.mask_id,
    }  # fmt: skip


def _write_split(d: Path, split: str, docs: Sequence[str], tok, dtype, shard_tokens: int) -> dict:
    names, cur, offsets, n_tokens = [], [], [0], 0

    def flush() -> None:
        name = f"{split}-{len(names):05d}"
        arr = np.concatenate(cur).astype(dtype) if cur else np.zeros(0, dtype)
        arr.tofile(d / f"{name}.tokens")
        np.save(d / f"{name}.docs.npy", np.asarray(offsets, dtype=np.int64))
        names.append(name)

    for i in range(0, len(docs), ENCODE_BATCH):
        for ids in tok.encode_batch(list(docs[i : i + ENCODE_BATCH])):
            if cur and offsets[-1] + len(ids) > shard_tokens:
                flush()
                cur, offsets = [], [0]
            cur.append(np.asarray(ids, dtype=np.int64))
            offsets.append(offsets[-1] + len(ids))
            n_tokens += len(ids)
    if cur or not names:
        flush()
    return {"docs": len(docs), "tokens": n_tokens, "shards": names}


def write_shards(
    out: str | Path,
    splits: dict[str, Sequence[str]],
    tokenizer,
    *,
    shard_tokens: int = 1 << 28,
    source: dict | None = None,
) -> dict:
    """Tokenise each split's documents into shards under ``out`` (replaced whole); the manifest."""
    if not isinstance(shard_tokens, int) or shard_tokens < 1:
        raise ValueError(f"--shard-tokens: expected a positive integer, got {shard_tokens!r}")
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    manifest = {
        "format": FORMAT, "version": 1, "dtype": np.dtype(dtype).name,
        "tokenizer": _tokenizer_record(tokenizer), "source": source or {}, "splits": {},
    }  # fmt: skip

    def write(tmp: Path) -> None:
        for split, docs in splits.items():
            manifest["splits"][split] = _write_split(
                tmp, split, docs, tokenizer, dtype, shard_tokens
            )
        tokenizer.save(tmp / "tokenizer")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))

    atomic_write_dir(Path(out), write)
    return manifest


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a shard folder (ShardError naming the file when it is not one)."""
    f = Path(folder) / MANIFEST
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(
            f"{f}: expected a shard manifest written by lm-core prepare ({e})"
        ) from None
    if not isinstance(m, dict) or m.get("format") != FORMAT or "tokenizer" not in m:
        raise ShardError(f"{f}: expected format {FORMAT!r} with a tokenizer record")
    return m


def folder_tokenizer(folder: str | Path):
    """The tokenizer saved in a shard folder, checked against the manifest's hash."""
    tok = load_tokenizer(Path(folder) / "tokenizer")
    check_tokenizer(folder, tok)
    return tok


def check_tokenizer(folder: str | Path, tok) -> None:
    """ShardError (one line) unless ``tok`` is the tokenizer the folder was made with."""
    rec = read_manifest(folder)["tokenizer"]
    if rec.get("sha256") != tokenizer_hash(tok):
        raise ShardError(
            f"{Path(folder) / MANIFEST}: the shards were tokenised with another tokenizer "
            f"({rec.get('kind')}, {rec.get('vocab_size')} ids, sha256 {str(rec.get('sha256'))[:12]}"
            f") than this run's ({tok.kind}, {tok.vocab_size} ids, sha256 "
            f"{tokenizer_hash(tok)[:12]}); run lm-core prepare again with this tokenizer"
        )


class ShardDocs:
    """The documents of one split of a shard folder, memory-mapped.

    ``len(docs)`` documents; ``docs.lengths`` int64 [n] token counts; ``docs[i]`` a LongTensor
    [lengths[i]] (copied out of the map). Maps are opened on first use in each process, so the
    object pickles cheaply into DataLoader workers.
    """

    def __init__(self, folder: str | Path, split: str, max_docs: int | None = None) -> None:
        self.folder, self.split = Path(folder), split
        m = read_manifest(folder)
        if split not in m.get("splits", {}):
            raise ShardError(f"{self.folder / MANIFEST}: no {split!r} split")
        self.dtype = np.dtype(m["dtype"])
        self.names = list(m["splits"][split]["shards"])
        offs = []
        for name in self.names:
            f = self.folder / f"{name}.docs.npy"
            try:
                offs.append(np.load(f, allow_pickle=False))
            except (OSError, ValueError) as e:
                raise ShardError(f"{f}: unreadable document index ({e})") from None
        counts = [len(o) - 1 for o in offs]
        self._shard_of = np.repeat(np.arange(len(offs)), counts)
        self._start = np.concatenate([o[:-1] for o in offs]) if offs else np.zeros(0, np.int64)
        self.lengths = np.concatenate([np.diff(o) for o in offs]) if offs else self._start
        if max_docs is not None:
            self._shard_of, self._start = self._shard_of[:max_docs], self._start[:max_docs]
            self.lengths = self.lengths[:max_docs]
        self._maps: dict[int, np.memmap] = {}

    def __len__(self) -> int:
        return len(self.lengths)

    def _map(self, s: int) -> np.ndarray:
        if s not in self._maps:
            f = self.folder / f"{self.names[s]}.tokens"
            self._maps[s] = (
                np.memmap(f, dtype=self.dtype, mode="r") if f.stat().st_size else np.zeros(0)
            )
        return self._maps[s]

    def __getitem__(self, i: int) -> torch.Tensor:
        s, a = int(self._shard_of[i]), int(self._start[i])
        return torch.from_numpy(self._map(s)[a : a + int(self.lengths[i])].astype(np.int64))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}


def prepare_splits(
    train: Iterable[str], val: Iterable[str], tokenizer, out: str | Path, **kw
) -> dict:
    """:func:`write_shards` of a train and a val split (what ``lm-core prepare`` writes)."""
    return write_shards(out, {"train": list(train), "val": list(val)}, tokenizer, **kw)
