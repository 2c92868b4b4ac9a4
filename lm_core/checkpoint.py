"""Checkpoints without Lightning and without pickle.

A checkpoint is a directory::

    DIR/config.json        {"format": "lm_core", "model": ModelConfig fields, "mask_id": int,
                            "objective": "masked" | "ar" | ..., "extra": {...}}
    DIR/model.safetensors  weights (safetensors: loading never executes code)
    DIR/tokenizer/         the tokenizer (see lm_core.data.tokenizers)

It is written whole or not at all (:func:`lm_core.outputs.atomic_write_dir`: a temporary sibling,
fsynced, folders 0755 and files 0644, renamed into place). Every load error is one
:class:`CheckpointError` whose message is one line naming the file and what is wrong.

The output-folder helpers shared with tsdiff live in :mod:`lm_core.outputs` and are importable
from here too: :func:`ensure_writable`, :func:`output_lock`, :class:`OutputError`,
:class:`OutputLockedError`, :func:`atomic_write_file`, :func:`atomic_write_text`,
:func:`atomic_write_dir`.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lm_core.config import ModelConfig
from lm_core.data.tokenizers import load_tokenizer
from lm_core.nn.transformer import Transformer
from lm_core.outputs import (
    DIR_MODE,
    FILE_MODE,
    LOCK_NAME,
    OutputError,
    OutputLockedError,
    atomic_write_dir,
    atomic_write_file,
    atomic_write_text,
    ensure_writable,
    one_line,
    output_lock,
    reason,
)

__all__ = [
    "DIR_MODE", "FILE_MODE", "LOCK_NAME", "CheckpointError", "OutputError", "OutputLockedError",
    "atomic_write_dir", "atomic_write_file", "atomic_write_text", "check_shapes",
    "check_token_id", "ensure_writable", "load_checkpoint", "one_line", "output_lock",
    "previous_path", "read_json_object", "safe_member", "save_checkpoint", "write_checkpoint_dir",
]  # fmt: skip


class CheckpointError(RuntimeError, ValueError):
    """A checkpoint is missing, corrupt, unsafe or does not match its tokenizer; the message is one
    line naming the file. (A ValueError too: it is bad input, and older callers catch that.)"""


def previous_path(path: str | Path) -> Path:
    """Where a checkpoint file's predecessor is kept: ``DIR/last.ckpt -> DIR/last-prev.ckpt``
    (see :class:`lm_core.train.checkpoint_io.AtomicCheckpointIO`)."""
    p = Path(path)
    return p.with_name(f"{p.stem}-prev{p.suffix}")


def safe_member(folder: Path, name: object, what: str) -> Path:
    """``folder / name`` for a relative name that stays inside ``folder`` (no absolute path, no
    ``..``); else :class:`CheckpointError` naming ``what`` (the file that gave the name)."""
    if not isinstance(name, str) or not name or "\\" in name:
        raise CheckpointError(f"{what}: expected a file name inside {folder}, got {name!r}")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise CheckpointError(f"{what}: refused path {name!r}, which leaves {folder}")
    return folder / p


def read_json_object(file: Path, where: str) -> dict:
    """A JSON object from ``file``; :class:`CheckpointError` ``"{where}: ..."`` on any problem."""
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise CheckpointError(f"{where}: {file.name} cannot be read ({reason(e)})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"{where}: {file.name} is corrupt (not JSON: {one_line(e)})"
        ) from None
    if not isinstance(raw, dict):
        raise CheckpointError(
            f"{where}: {file.name} is corrupt (expected a JSON object, got {type(raw).__name__})"
        )
    return raw


def check_token_id(value: object, vocab_size: int, where: str, optional: bool = True) -> None:
    """A special token id must be an int in [0, vocab_size) (or None when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size:
        raise CheckpointError(
            f"{where}: expected a token id in [0, {vocab_size}) (the model's vocab_size), "
            f"got {value!r}"
        )


def save_checkpoint(
    path: str | Path,
    model: Transformer,
    tokenizer=None,
    *,
    mask_id: int | None = None,
    objective: str = "masked",
    extra: dict | None = None,
    state: dict | None = None,
) -> Path:
    """Save weights, config and tokenizer atomically into directory ``path``. ``state``: the
    weights to write instead of ``model.state_dict()`` (a sharded model's gathered full state)."""
    if mask_id is None and tokenizer is not None:
        mask_id = tokenizer.mask_id
    meta = {
        "format": "lm_core",
        "model": model.cfg.to_dict(),
        "mask_id": mask_id,
        "objective": objective,
        "extra": extra or {},
    }
    state = model.state_dict() if state is None else state
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
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


def _read_meta(path: Path) -> tuple[dict, ModelConfig]:
    where = f"checkpoint {path}"
    meta = read_json_object(path / "config.json", where)
    model = meta.get("model")
    if not isinstance(model, dict):
        raise CheckpointError(
            f"{where}: config.json is corrupt (field 'model': expected an object of model "
            f"settings, got {model!r})"
        )
    try:
        cfg = ModelConfig.from_dict(model)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: config.json is corrupt ({one_line(e)})") from None
    if cfg.vocab_size is None:
        raise CheckpointError(f"{where}: config.json is corrupt (model.vocab_size is missing)")
    check_token_id(meta.get("mask_id"), cfg.vocab_size, f"{where}: config.json: mask_id")
    for key, kind in (("objective", str), ("extra", dict)):
        if key in meta and not isinstance(meta[key], kind):
            raise CheckpointError(
                f"{where}: config.json is corrupt (field {key!r}: expected {kind.__name__}, "
                f"got {meta[key]!r})"
            )
    return meta, cfg


def check_shapes(state_shapes: dict, model: torch.nn.Module, where: str) -> None:
    """Every stored tensor must exist in ``model`` with the same shape (state_shapes: name ->
    shape tuple); :class:`CheckpointError` naming the first that does not."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, shape in state_shapes.items():
        if name in expected and tuple(shape) != expected[name]:
            raise CheckpointError(
                f"{where}: tensor {name} has shape {tuple(shape)} but the config implies "
                f"{expected[name]}"
            )


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """Load (model, tokenizer or None, meta dict) from a checkpoint directory; model in eval mode.

    Raises :class:`CheckpointError` (one line naming the file) for a missing or incomplete
    folder, corrupt JSON or safetensors, missing or ill-typed fields, weights that do not match
    the config, and special token ids outside the vocabulary.
    """
    path = Path(path)
    cfg_file, weights = path / "config.json", path / "model.safetensors"
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {path} does not exist")
    if not cfg_file.is_file() or not weights.is_file():
        raise CheckpointError(
            f"checkpoint {path} is incomplete: expected config.json and model.safetensors"
        )
    meta, cfg = _read_meta(path)
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"checkpoint {path}: model.safetensors is corrupt ({one_line(e)})"
        ) from None
    model = Transformer(cfg).to(device)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    check_shapes(shapes, model, f"checkpoint {path}: model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise CheckpointError(
            f"checkpoint {path}: weights do not match config (missing {missing}, unexpected {unexpected})"
        )
    model.eval()
    tokenizer = None
    if (path / "tokenizer").is_dir():
        try:
            tokenizer = load_tokenizer(path / "tokenizer")
        except Exception as e:  # noqa: BLE001 - a corrupt tokenizer folder, whatever it raises
            raise CheckpointError(
                f"checkpoint {path}: tokenizer/ is corrupt ({one_line(e)})"
            ) from None
        if tokenizer.vocab_size > cfg.vocab_size:
            raise CheckpointError(
                f"checkpoint {path}: tokenizer has {tokenizer.vocab_size} ids but the model's "
                f"vocab_size is {cfg.vocab_size}"
            )
        for name in ("mask_id", "eos_id", "pad_id"):
            value = getattr(tokenizer, name, None)
            check_token_id(value, cfg.vocab_size, f"checkpoint {path}: tokenizer {name}")
    return model, tokenizer, meta
