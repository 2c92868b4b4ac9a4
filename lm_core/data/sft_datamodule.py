"""Lightning data module for supervised fine-tuning (SFT) with ``lm-core fit``.

Select it in a fit config with::

    objective:
      kind: sft
    data:
      class_path: lm_core.data.SFTDataModule
      init_args:
        train: configs/lm/data/tiny-sft.jsonl
        batch_size: 16
        max_len: 64

Examples are JSONL lines ``{"prompt", "response"}`` or chats ``{"messages": [...]}`` rendered with
the plain-text template of :mod:`lm_core.data.sft`. Batches are
:func:`lm_core.data.sft.sft_batch` dicts ``{"input_ids" [B, T], "maskable" [B, T], "prompt_len"
[B]}``: rows right-padded with EOS, the
prompt never maskable, the response, its EOS and the EOS padding maskable. Training cycles over
the examples epoch after epoch (reshuffled each epoch) until ``trainer.max_steps`` (or
``trainer.max_epochs``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Literal

import lightning as L
from torch.utils.data import DataLoader

from lm_core.data.sft import DEFAULT_TEMPLATE, ChatTemplate, SFTDataset, read_jsonl, sft_batch
from lm_core.data.tokenizers import build_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_path(spec: str) -> Path:
    """A path as given, or relative to the repository root (so configs work from any cwd)."""
    p = Path(spec)
    if p.is_file() or p.is_absolute():
        return p
    alt = REPO_ROOT / p
    return alt if alt.is_file() else p


def _load(spec: str | list[str]) -> list[dict]:
    specs = [spec] if isinstance(spec, str) else list(spec)
    out = []
    for s in specs:
        out.extend(read_jsonl(resolve_path(s)))
    if not out:
        raise ValueError(f"train: no SFT examples in {spec!r}")
    return out


def is_held_out(example: dict, fraction: float) -> bool:
    """Fixed split by a hash of the example's JSON: independent of file order and seed."""
    key = json.dumps(example, sort_keys=True).encode()
    h = int.from_bytes(hashlib.sha1(key).digest()[:8], "big")
    return h / 2**64 < fraction


def _texts(examples: list[dict]) -> list[str]:
    """All message texts (for training a BPE tokenizer on the SFT data)."""
    out = []
    for ex in examples:
        if "messages" in ex:
            out.extend(m["content"] for m in ex["messages"])
        else:
            out.extend([ex["prompt"], ex["response"]])
    return out


class SFTDataModule(L.LightningDataModule):
    """JSONL prompt/response or chat examples as EOS-padded SFT batches.

    Args:
        train: JSONL file(s) of examples; relative paths are tried from the cwd, then from the
            repository root.
        val: JSONL file(s) of validation examples. None: a fixed ``val_fraction`` of ``train``
            held out by a hash of each example (the rest is trained on).
        val_fraction: share of ``train`` held out when ``val`` is None.
        tokenizer: ``byte`` or ``bpe`` (trained on the examples' texts); ignored when a tokenizer
            is given with :meth:`set_tokenizer` (``init_from`` does this).
        bpe_vocab_size: total ids of the BPE tokenizer, specials included.
        batch_size: examples per batch.
        max_len: longest formatted example (prompt + response + EOS) in tokens; longer ones are
            an error naming the example.
        pad_to_max_len: pad every batch to ``max_len`` (LLaDA: a fixed length, so every answer
            carries the same EOS padding) instead of to the batch's longest example.
        template: role markers of :class:`lm_core.data.sft.ChatTemplate` (keys ``system``, ``user``,
            ``assistant``, ``end_of_turn``); None: the default template.
        seed: seeds the per-epoch shuffle.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        train: str | list[str] = "configs/lm/data/tiny-sft.jsonl",
        val: str | list[str] | None = None,
        val_fraction: float = 0.1,
        tokenizer: Literal["byte", "bpe"] = "byte",
        bpe_vocab_size: int = 4096,
        batch_size: int = 16,
        max_len: int = 256,
        pad_to_max_len: bool = False,
        template: dict[str, str] | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if tokenizer not in ("byte", "bpe"):
            raise ValueError(f"tokenizer: expected 'byte' or 'bpe', got {tokenizer!r}")
        for name, v in (("batch_size", batch_size), ("max_len", max_len)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction!r}")
        try:
            self.template = DEFAULT_TEMPLATE if template is None else ChatTemplate(**template)
        except TypeError:
            raise ValueError(
                f"template: expected keys among system, user, assistant, end_of_turn, got {template}"
            ) from None
        self.train_spec, self.val_spec, self.val_fraction = train, val, val_fraction
        self.tokenizer_kind, self.bpe_vocab_size = tokenizer, bpe_vocab_size
        self.batch_size, self.max_len, self.pad_to_max_len = batch_size, max_len, pad_to_max_len
        self.seed, self.num_workers = seed, num_workers
        self.tokenizer = None
        self.train_ds: SFTDataset | None = None
        self.val_ds: SFTDataset | None = None

    def set_tokenizer(self, tokenizer) -> None:
        """Use a given tokenizer (e.g. a pretrained checkpoint's) instead of building one."""
        self.tokenizer = tokenizer

    def _examples(self) -> tuple[list[dict], list[dict]]:
        train = _load(self.train_spec)
        if self.val_spec is not None:
            return train, _load(self.val_spec)
        val = [ex for ex in train if is_held_out(ex, self.val_fraction)]
        train = [ex for ex in train if not is_held_out(ex, self.val_fraction)]
        if not val or not train:
            raise ValueError(
                f"val: holding out val_fraction={self.val_fraction} of {self.train_spec!r} "
                "leaves an empty split; give val or change val_fraction"
            )
        return train, val

    def setup(self, stage: str | None = None) -> None:
        """Read and split the examples, build the tokenizer (unless given), format; runs once."""
        if self.train_ds is not None:
            return
        train, val = self._examples()
        if self.tokenizer is None:
            self.tokenizer = build_tokenizer(
                self.tokenizer_kind, _texts(train), self.bpe_vocab_size
            )
        kw = dict(tokenizer=self.tokenizer, template=self.template, max_len=self.max_len)
        self.train_ds = SFTDataset(train, **kw)
        self.val_ds = SFTDataset(val, **kw)

    def _collate(self):
        length = self.max_len if self.pad_to_max_len else None
        return functools.partial(sft_batch, eos_id=self.tokenizer.eos_id, length=length)

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches; ``lm-core fit`` reshuffles them each epoch (seed, epoch)."""
        self.setup("fit")
        return DataLoader(
            self.train_ds,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(self.train_ds) >= self.batch_size,
            collate_fn=self._collate(),
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order."""
        self.setup("validate")
        return DataLoader(
            self.val_ds,
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=self._collate(),
            num_workers=self.num_workers,
        )
