"""Set-up steps of a training run shared by every objective: model shape from the data,
resume and init checkpoints, data checks, epochs to steps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lm_core.checkpoint import previous_path, read_json_object
from lm_core.config import ConfigError, ModelConfig
from lm_core.data.sft_datamodule import SFTDataModule
from lm_core.data.tokenizers import load_tokenizer
from lm_core.text.llada import HFTokenizer, is_llada_dir, llada_config, load_any


def data_length(dm) -> tuple[str, int | None]:
    """(config key, tokens) of the longest sequence a data module yields."""
    if hasattr(dm, "token_budget"):
        return "data.token_budget", dm.token_budget
    return "data.max_len", getattr(dm, "max_len", None)


def resolve_model(
    model: ModelConfig, tokenizer, token_budget: int | None, key: str = "data.token_budget"
) -> ModelConfig:
    """Fill ``vocab_size`` from the tokenizer and check the data fits the model."""
    if model.vocab_size is None:
        model = dataclasses.replace(model, vocab_size=tokenizer.vocab_size)
    elif model.vocab_size < tokenizer.vocab_size:
        src = getattr(tokenizer, "source", "")
        raise ConfigError(
            f"model.vocab_size: expected at least the tokenizer's {tokenizer.vocab_size} ids"
            f"{f' ({src})' if src else ''}, got {model.vocab_size}"
        )
    if token_budget is not None and token_budget > model.max_seq_len:
        raise ConfigError(
            f"{key}: sequences of {token_budget} tokens are longer than "
            f"model.max_seq_len={model.max_seq_len}"
        )
    return model


def resume_path(resume: str | None, out_dir: Path) -> str | None:
    """The checkpoint to resume from: None (fresh), out_dir/last.ckpt if ``auto`` and present,
    or the given file (FileNotFoundError if it does not exist)."""
    if resume is None or resume in ("none", "null", ""):
        return None
    if resume == "auto":
        last = out_dir / "last.ckpt"
        return str(last) if last.is_file() or previous_path(last).is_file() else None
    if not Path(resume).is_file() and not previous_path(resume).is_file():
        raise FileNotFoundError(f"resume: checkpoint {resume} does not exist")
    return resume


def check_data(objective: str, dm) -> None:
    """SFT batches go with the sft objective and only with it (or with dmax, which takes both)."""
    sft_data = isinstance(dm, SFTDataModule)
    if objective == "sft" and not sft_data:
        raise ConfigError(
            "objective.kind: sft needs SFT data (data.class_path: lm_core.data.SFTDataModule), "
            f"got {type(dm).__name__}"
        )
    if sft_data and objective not in ("sft", "dmax"):
        raise ConfigError(
            f"objective.kind: SFTDataModule data needs sft or dmax, got {objective!r}"
        )


def load_init(init_from: str, dm):
    """Pretrained (Transformer, mask_id) from ``init_from``; its tokenizer is set on ``dm``."""
    if not Path(init_from).is_dir():
        raise ConfigError(f"init_from: checkpoint directory {init_from} does not exist")
    net, tok, meta = load_any(init_from)
    if tok is None:
        raise ConfigError(f"init_from: {init_from} has no tokenizer (tokenizer/ or tokenizer.json)")
    mask_id = meta.get("mask_id")
    mask_id = tok.mask_id if mask_id is None else int(mask_id)
    dm.set_tokenizer(tok)
    return net, mask_id


def read_init(init_from: str, dm) -> tuple[ModelConfig, int]:
    """(model shape, mask_id) of ``init_from`` without reading its weights; its tokenizer is set
    on ``dm``. The sharded path's ranks other than 0 take this instead of :func:`load_init`
    (rank 0, which reads and checks the whole checkpoint, broadcasts the weights)."""
    path = Path(init_from)
    if not path.is_dir():
        raise ConfigError(f"init_from: checkpoint directory {init_from} does not exist")
    raw = read_json_object(path / "config.json", f"init_from {init_from}")
    if is_llada_dir(path):
        cfg, mask_id = llada_config(raw), int(raw["mask_token_id"])
        tok = HFTokenizer.from_dir(path, mask_id=mask_id)
    else:
        cfg, tok = ModelConfig.from_dict(raw["model"]), load_tokenizer(path / "tokenizer")
        mask_id = tok.mask_id if raw.get("mask_id") is None else int(raw["mask_id"])
    dm.set_tokenizer(tok)
    return cfg, mask_id


def epochs_to_steps(cfg, dm) -> int:
    """max_steps for ``trainer.max_epochs`` passes over the training batches (one process)."""
    t = cfg.trainer
    if t.max_epochs is None:
        return t.max_steps
    n_batches = len(dm.train_dataloader())
    ranks = (t.devices if isinstance(t.devices, int) else 1) * t.num_nodes
    per_epoch = max(1, n_batches // max(ranks, 1) // t.accumulate_grad_batches)
    return per_epoch * t.max_epochs
