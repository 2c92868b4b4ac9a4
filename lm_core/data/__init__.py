"""Text data: tokenizers with reserved EOS/PAD/MASK, corpora, packing into variable-length batches.

Batches are dicts: packed ``{"input_ids": [1, T], "cu_seqlens": int32 [n + 1]}`` or padded
``{"input_ids": [B, L], "valid": bool [B, L]}``. The Lightning ``TextDataModule`` lives in
``lm_core.data.datamodule`` and ``SFTDataModule`` (supervised fine-tuning batches) in
``lm_core.data.sft_datamodule``, with the SFT formatting in ``lm_core.data.sft``. Corpora
tokenised once into memory-mapped shards (``lm-core prepare``) are :mod:`lm_core.data.shards`.
"""

from lm_core.data.corpora import BUILTIN, CorpusError, chunk_text, holdout, load_corpus, split_of
from lm_core.data.packing import (
    PackedDataset,
    collate_single,
    pack_documents,
    pad_documents,
    plan_batches,
)
from lm_core.data.shards import ShardDocs, ShardError, is_shard_dir, write_shards
from lm_core.data.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    PretrainedTokenizer,
    TokenizerError,
    build_tokenizer,
    load_tokenizer,
    resolve_tokenizer,
    tokenizer_hash,
)

__all__ = [
    "BUILTIN",
    "BPETokenizer",
    "ByteTokenizer",
    "CorpusError",
    "PackedDataset",
    "PretrainedTokenizer",
    "SFTDataModule",
    "ShardDocs",
    "ShardError",
    "TextDataModule",
    "TokenizerError",
    "build_tokenizer",
    "chunk_text",
    "collate_single",
    "holdout",
    "is_shard_dir",
    "load_corpus",
    "load_tokenizer",
    "pack_documents",
    "pad_documents",
    "plan_batches",
    "resolve_tokenizer",
    "split_of",
    "tokenizer_hash",
    "write_shards",
]


def __getattr__(name: str):
    """The Lightning data modules, imported when first asked for (``lm_core.data.SFTDataModule``
    in a fit config's ``class_path``): loading checkpoints and tokenizers, which every inference
    command does through this package, then never pays Lightning's import (about 3 s)."""
    if name == "TextDataModule":
        from lm_core.data.datamodule import TextDataModule  # noqa: PLC0415 - see above

        return TextDataModule
    if name == "SFTDataModule":
        from lm_core.data.sft_datamodule import SFTDataModule  # noqa: PLC0415 - see above

        return SFTDataModule
    raise AttributeError(f"module 'lm_core.data' has no attribute {name!r}")
