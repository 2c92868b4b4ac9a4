"""Checkpoints without Lightning and without pickle.

A checkpoint is a directory::

    DIR/config.json        {"format": "lm_core", "model": ModelConfig fields, "mask_id": int,
                            "objective": "masked" | "ar" | ..., "extra": {...}}
    DIR/model.safetensors  weights (safetensors: loading never executes code)
    DIR/tokenizer/         the tokenizer (see lm_core.data.tokenizers)

Writes go to a temporary sibling directory that is renamed into place, so a crash never leaves a
half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lm_core.config import ModelConfig
from lm_core.data.tokenizers import load_tokenizer
from lm_core.nn.transformer import Transformer


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, corrupt or does not match its tokenizer."""


def atomic_write_file(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Create ``path`` atomically: ``write(tmp)`` fills a temporary file in the same folder (a
    unique name ending in ``.tmp``), which is made world-readable and renamed over ``path``. A
    killed or failing writer never leaves half a file, and its temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_file`)."""
    return atomic_write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_dir(final: Path, write) -> Path:
    """Call ``write(tmp_dir)`` then move tmp_dir to ``final`` (replacing it)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        write(tmp)
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def save_checkpoint(
    path: str | Path,
    model: Transformer,
    tokenizer=None,
    *,
    mask_id: int | None = None,
    objective: str = "masked",
    extra: dict | None = None,
) -> Path:
    """Save weights, config and tokenizer atomically into directory ``path``."""
    if mask_id is None and tokenizer is not None:
        mask_id = tokenizer.mask_id
    meta = {
        "format": "lm_core",
        "model": model.cfg.to_dict(),
        "mask_id": mask_id,
        "objective": objective,
        "extra": extra or {},
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)

    return write_checkpoint_dir(path, state, meta, tokenizer)


def write_checkpoint_dir(path: str | Path, state: dict, meta: dict, tokenizer=None) -> Path:
    """Atomically write model.safetensors (``state``), config.json (``meta``) and the tokenizer."""

    def write(tmp: Path) -> None:
        save_file(state, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps(meta, indent=2))
        if tokenizer is not None:
            tokenizer.save(tmp / "tokenizer")

    return atomic_write_dir(Path(path), write)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """Load (model, tokenizer or None, meta dict) from a checkpoint directory; model in eval mode."""
    path = Path(path)
    cfg_file, weights = path / "config.json", path / "model.safetensors"
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {path} does not exist")
    if not cfg_file.is_file() or not weights.is_file():
        raise CheckpointError(
            f"checkpoint {path} is incomplete: expected config.json and model.safetensors"
        )
    try:
        meta = json.loads(cfg_file.read_text())
        cfg = ModelConfig.from_dict(meta["model"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: config.json is corrupt ({e})") from e
    try:
        state = load_file(str(weights), device=str(device))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"checkpoint {path}: model.safetensors is corrupt ({e})") from e
    model = Transformer(cfg).to(device)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise CheckpointError(
            f"checkpoint {path}: weights do not match config (missing {missing}, unexpected {unexpected})"
        )
    model.eval()
    tokenizer = None
    if (path / "tokenizer").is_dir():
        tokenizer = load_tokenizer(path / "tokenizer")
        if tokenizer.vocab_size > cfg.vocab_size:
            raise CheckpointError(
                f"checkpoint {path}: tokenizer has {tokenizer.vocab_size} ids but the model's "
                f"vocab_size is {cfg.vocab_size}"
            )
    return model, tokenizer, meta
