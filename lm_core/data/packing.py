"""Packing tokenized documents into variable-length batches (the iLLaDA recipe).

Packed batch (what :func:`pack_documents` and :class:`PackedDataset` yield)::

    {"input_ids": LongTensor [1, T], "cu_seqlens": IntTensor [n + 1]}   (T <= token_budget)

Segment i is ``input_ids[0, cu[i]:cu[i+1]]``; the model's attention never crosses segments.
``cu_seqlens`` is int32, starts at 0, ends at T and is strictly increasing.

How a document becomes segments (in this order):

1. EOS is appended: ``seq = doc + [EOS]``.
2. With probability ``split_share`` (seeded), ``seq`` is split at a uniform random point into two
   segments that attend only to themselves (iLLaDA splits 30 % of its sequences so that the
   model also sees short contexts). No EOS is inserted at the split: EOS marks only real
   document ends, so the model never learns to stop mid-text.
3. Segments longer than ``max_doc_len`` are cut into pieces of at most ``max_doc_len``; the first
   piece fills what is left of the current batch (if that is shorter), so long documents leave
   no holes.
4. Pieces go, in order, into the current batch while they fit in ``token_budget``; otherwise a
   new batch starts (greedy next-fit).

The token stream is never changed: concatenating all batches gives ``doc0 EOS doc1 EOS ...``
whatever ``split_share`` is; splitting only adds segment boundaries.

Padded batch (the baseline, :func:`pad_documents`)::

    {"input_ids": LongTensor [B, seq_len], "valid": BoolTensor [B, seq_len]}

Each row is one document, ``doc + [EOS]`` cut to ``seq_len`` then filled with PAD; ``valid`` is
False on PAD only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

Piece = tuple[int, int, int]  # (document index, start, end) into doc + [EOS]


def _check_args(token_budget: int, max_doc_len: int | None, split_share: float) -> int:
    if not isinstance(token_budget, int) or token_budget < 1:
        raise ValueError(f"token_budget: expected a positive integer, got {token_budget!r}")
    if max_doc_len is None:
        max_doc_len = token_budget
    if not isinstance(max_doc_len, int) or not 1 <= max_doc_len <= token_budget:
        raise ValueError(
            f"max_doc_len: expected an integer in [1, token_budget={token_budget}], "
            f"got {max_doc_len!r}"
        )
    if not 0.0 <= split_share <= 1.0:
        raise ValueError(f"split_share: expected a number in [0, 1], got {split_share!r}")
    return max_doc_len


def _segments(lengths: Sequence[int], split_share: float, rng: random.Random) -> list[Piece]:
    """(doc, start, end) segments of every ``doc + [EOS]`` after the random splits."""
    segs: list[Piece] = []
    for d, n in enumerate(lengths):
        L = n + 1
        if split_share > 0 and rng.random() < split_share and L >= 2:
            cut = rng.randint(1, L - 1)
            segs += [(d, 0, cut), (d, cut, L)]
        else:
            segs.append((d, 0, L))
    return segs


def plan_batches(
    lengths: Sequence[int],
    token_budget: int,
    *,
    split_share: float = 0.0,
    seed: int = 0,
    max_doc_len: int | None = None,
) -> list[list[Piece]]:
    """The packing plan: for each batch, its pieces (doc index, start, end) into ``doc + [EOS]``.

    ``lengths[i]`` is the token count of document i without EOS. Cheap (no tensors), so
    datasets use it to count batches.
    """
    max_doc_len = _check_args(token_budget, max_doc_len, split_share)
    batches: list[list[Piece]] = []
    cur: list[Piece] = []
    used = 0
    for d, start, end in _segments(lengths, split_share, random.Random(seed)):
        while start < end:
            room = token_budget - used
            size = min(end - start, max_doc_len)
            if size > room:
                if end - start > max_doc_len and room > 0:
                    size = room  # a long segment is cut anyway: fill the batch first
                else:
                    batches.append(cur)
                    cur, used = [], 0
                    continue
            cur.append((d, start, start + size))
            used += size
            start += size
    if cur:
        batches.append(cur)
    return batches


def _materialize(docs: Sequence[Tensor], pieces: list[Piece], eos: Tensor) -> dict:
    parts, lens = [], []
    for d, s, e in pieces:
        n = docs[d].numel()
        if e <= n:
            parts.append(docs[d][s:e])
        else:
            parts += [docs[d][s:n], eos]
        lens.append(e - s)
    cu = torch.zeros(len(lens) + 1, dtype=torch.int32)
    cu[1:] = torch.tensor(lens, dtype=torch.int32).cumsum(0)
    return {"input_ids": torch.cat(parts).view(1, -1), "cu_seqlens": cu}


def _as_tensors(docs_ids) -> list[Tensor]:
    return [torch.as_tensor(d, dtype=torch.long).view(-1) for d in docs_ids]


def pack_documents(
    docs_ids: list[list[int]],
    token_budget: int,
    eos_id: int,
    *,
    split_share: float = 0.0,
    seed: int = 0,
    max_doc_len: int | None = None,
) -> list[dict]:
    """Pack documents (with EOS appended) into batches of at most ``token_budget`` tokens.

    Args:
        docs_ids: token ids of each document (lists, 1-D tensors or arrays), without EOS.
        token_budget: most tokens in one batch (T <= token_budget).
        eos_id: id appended after every document.
        split_share: share of documents split in two at a uniform random point (see module doc).
        seed: seeds the splits; the same arguments always give the same batches.
        max_doc_len: longest segment; longer ones are cut (default ``token_budget``).

    Returns:
        list of ``{"input_ids": LongTensor [1, T], "cu_seqlens": IntTensor [n + 1]}``, documents
        in input order.
    """
    docs = _as_tensors(docs_ids)
    plan = plan_batches(
        [d.numel() for d in docs],
        token_budget,
        split_share=split_share,
        seed=seed,
        max_doc_len=max_doc_len,
    )
    eos = torch.tensor([eos_id], dtype=torch.long)
    return [_materialize(docs, pieces, eos) for pieces in plan]


def pad_documents(
    docs_ids: list[list[int]], seq_len: int, pad_id: int, eos_id: int, batch_size: int
) -> list[dict]:
    """One document per row: ``doc + [EOS]`` cut to ``seq_len``, then PAD.

    Returns:
        list of ``{"input_ids": LongTensor [B, seq_len], "valid": BoolTensor [B, seq_len]}`` with
        B = ``batch_size`` (the last batch may be smaller); ``valid`` is False on PAD.
    """
    for name, v in (("seq_len", seq_len), ("batch_size", batch_size)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    docs = _as_tensors(docs_ids)
    out = []
    for b in range(0, len(docs), batch_size):
        group = docs[b : b + batch_size]
        ids = torch.full((len(group), seq_len), pad_id, dtype=torch.long)
        valid = torch.zeros(len(group), seq_len, dtype=torch.bool)
        for r, d in enumerate(group):
            n = min(d.numel(), seq_len)
            ids[r, :n] = d[:n]
            if n < seq_len:
                ids[r, n] = eos_id
            valid[r, : min(n + 1, seq_len)] = True
        out.append({"input_ids": ids, "valid": valid})
    return out


class PackedDataset(IterableDataset):
    """Packed batches of a tokenized corpus, reshuffled every epoch.

    Each epoch the documents are permuted (seed ``(seed, epoch)``), then packed by
    :func:`pack_documents` with split seed ``(seed, epoch)``. Use with ``DataLoader(ds,
    batch_size=None)`` or ``batch_size=1, collate_fn=collate_single``.

    The epoch is set by :meth:`set_epoch`; without it, every new iteration advances it by one
    (so a plain loop over epochs reshuffles). With DataLoader workers, use
    ``persistent_workers=True`` so each worker's copy advances too; worker w yields batches
    w, w + n_workers, ... of the same plan.

    Args:
        docs_ids: token ids of each document without EOS (lists or 1-D tensors), or a document
            store with ``lengths`` and ``__getitem__`` (:class:`lm_core.data.shards.ShardDocs`:
            memory-mapped; a document is read only when a batch holding it is built).
        token_budget: most tokens per batch.
        eos_id: id appended after every document.
        split_share: share of documents split in two (0 for validation).
        seed: base seed of the permutation and the splits.
        shuffle: permute documents each epoch (False keeps the input order: deterministic
            validation batches, identical every epoch).
        max_doc_len: longest segment (default ``token_budget``).
        by_rank: under ``torch.distributed``, rank r of w yields batches r, r + w, ... of the
            plan (cut to a multiple of w, so every rank has as many): each rank reads only its
            share. The rank is read when the dataset is built (in the training process, not in
            its DataLoader workers). ``splits_ranks`` says so to the resumable loader, which then takes every
            batch it is given.
    """

    def __init__(
        self,
        docs_ids: list[list[int]],
        token_budget: int,
        eos_id: int,
        split_share: float = 0.0,
        seed: int = 0,
        *,
        shuffle: bool = True,
        max_doc_len: int | None = None,
        by_rank: bool = False,
    ) -> None:
        super().__init__()
        _check_args(token_budget, max_doc_len, split_share)
        if hasattr(docs_ids, "lengths"):  # a document store (memory-mapped shards)
            self.docs, self.lengths = docs_ids, [int(n) for n in docs_ids.lengths]
        else:
            self.docs = _as_tensors(docs_ids)
            self.lengths = [d.numel() for d in self.docs]
        self.splits_ranks = by_rank
        self.share = _rank_world() if by_rank else (0, 1)  # read here, not in worker processes
        self.token_budget, self.eos_id = token_budget, eos_id
        self.split_share, self.seed, self.shuffle = split_share, seed, shuffle
        self.max_doc_len = max_doc_len
        self._epoch: int | None = None
        self._next_epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration (and count on from it)."""
        self._epoch = epoch

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.docs)))
        if self.shuffle:
            random.Random(f"{self.seed}-{epoch}").shuffle(order)
        return order

    def plan(self, epoch: int) -> tuple[list[int], list[list[Piece]]]:
        """(document order, batch plan) of ``epoch``; pieces index into the order."""
        order = self._order(epoch)
        split_seed = self.seed * 1_000_003 + epoch if self.shuffle else self.seed
        plan = plan_batches(
            [self.lengths[i] for i in order],
            self.token_budget,
            split_share=self.split_share,
            seed=split_seed,
            max_doc_len=self.max_doc_len,
        )
        return order, plan

    def __iter__(self) -> Iterator[dict]:
        epoch = self._epoch if self._epoch is not None else self._next_epoch
        self._epoch, self._next_epoch = None, epoch + 1
        order, plan = self.plan(epoch)
        docs = _Ordered(self.docs, order)
        eos = torch.tensor([self.eos_id], dtype=torch.long)
        if self.splits_ranks:
            rank, world = self.share
            plan = plan[: len(plan) // world * world][rank::world]
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for pieces in plan[wid::nw]:
            yield _materialize(docs, pieces, eos)

    def num_batches(self, epoch: int = 0) -> int:
        """Batches in ``epoch`` (no ``__len__``: the count changes a little between epochs)."""
        return len(self.plan(epoch)[1])


class _Ordered:
    """``docs[order[i]]`` on demand (no copy of the corpus per epoch)."""

    def __init__(self, docs, order: list[int]) -> None:
        self.docs, self.order = docs, order

    def __getitem__(self, i: int) -> Tensor:
        return self.docs[self.order[i]]


def _rank_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def collate_single(batch: list[dict]) -> dict:
    """Collate for ``DataLoader(batch_size=1)``: the one dict, unchanged."""
    if len(batch) != 1:
        raise ValueError(
            f"batch: expected exactly one packed dict (batch_size=1), got {len(batch)}"
        )
    return batch[0]
