"""A fitted forecaster on disk: ``config.json`` (plain JSON) and ``model.safetensors``.

:func:`save_checkpoint` writes both into a directory atomically (a temporary directory, then a
rename: :func:`lm_core.checkpoint.atomic_write_dir`; folders 0755, files 0644) while holding the
folder's lock file (:func:`lm_core.checkpoint.output_lock`): a second writer of the same folder,
in this or another process, fails at once with :class:`~lm_core.checkpoint.OutputLockedError`
and never replaces the first one's model. :func:`load_checkpoint` reads them back (safetensors:
no code is executed). Every problem becomes one line naming the file: an
:class:`~lm_core.checkpoint.OutputError` on writing (full disk, read-only, permission), a
:class:`~lm_core.checkpoint.CheckpointError` on reading (missing files, corrupt or truncated JSON
or safetensors, missing or ill-typed fields, weights that do not fit the config). The
``forecaster`` entry holds the flat :class:`~tsdiff.config.ForecasterConfig` fields, as it
always has, so checkpoints written before the config was split into sections still load.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lm_core.checkpoint import CheckpointError, check_shapes, read_json_object, safe_member
from lm_core.outputs import OutputError, atomic_write_dir, one_line, output_lock, reason
from tsdiff.adapters import adapter_state_dict, add_lora, has_lora, load_adapter, lora_settings
from tsdiff.config import ForecasterConfig, sampler_of_old_checkpoint
from tsdiff.data.frames import Columns
from tsdiff.model import NumericDenoiser, TSModelConfig
from tsdiff.pretrained import init_from_base, load_base

FORMAT = "tsdiff"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ADAPTER_FILE = "adapter.safetensors"
"""A forecaster fine-tuned with LoRA from a base keeps only its adapter (tsdiff.adapters) and the
base's name and digest; loading rebuilds it on the base (:func:`adapted_model`)."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """The folder is not there or lacks ``config.json`` / ``model.safetensors`` (one line; also a
    FileNotFoundError, as callers of earlier versions expect)."""


@dataclass
class Checkpoint:
    """Everything a fitted :class:`tsdiff.Forecaster` is made of."""

    config: ForecasterConfig
    model: NumericDenoiser
    columns: Columns
    temperature: float = 1.0
    spread: float = 1.0
    history: dict = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    ck: Checkpoint,
    files: dict[str, str] | None = None,
    *,
    lock: bool = True,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``files`` (name -> text, e.g. the
    ``fit.yaml`` of ``tsdiff fit``) into directory ``path``, all or nothing.

    ``lock``: hold ``path``'s output lock while writing (False: the caller holds it already).
    Raises :class:`OutputLockedError` when another writer holds it, :class:`OutputError` (one
    line naming ``path`` and the OS reason) when the folder cannot be written; either way an
    older ``path`` stays as it was and no temporary folder is left behind."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "forecaster": asdict(ck.config),
        "model": ck.model.cfg.to_dict(),
        "columns": asdict(ck.columns),
        "temperature": ck.temperature,
        "spread": ck.spread,
        "history": ck.history,
        "categories": ck.categories,
    }
    weights_file = WEIGHTS_FILE
    if has_lora(ck.model):  # the adapter only; the base is named by its digest
        weights_file = ADAPTER_FILE
        meta["adapter"] = lora_settings(ck.model) | {"base": ck.history.get("init", {})}
        state = {k: v.contiguous().cpu() for k, v in adapter_state_dict(ck.model).items()}
    else:
        state = {k: v.detach().contiguous().cpu() for k, v in ck.model.state_dict().items()}
    extra = dict(files or {})
    for name in extra:
        safe_member(path, name, f"{path}: extra file")
        if name in (CONFIG_FILE, WEIGHTS_FILE, ADAPTER_FILE):
            raise ValueError(f"{path}: extra file {name!r} would replace the checkpoint's own")

    def write(tmp: Path) -> None:
        save_file(state, str(tmp / weights_file))
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, default=str))
        for name, text in extra.items():
            (tmp / name).write_text(text, encoding="utf-8")

    fresh = missing_folders(path)
    try:
        with output_lock(path) if lock else contextlib.nullcontext():
            try:
                return atomic_write_dir(path, write)
            except OSError as e:
                raise OutputError(f"{path}: checkpoint not written ({reason(e)})") from None
            except SafetensorError as e:  # safetensors reports its own I/O errors
                raise OutputError(f"{path}: checkpoint not written ({one_line(e)})") from None
    except BaseException:
        if lock:  # the empty folders the lock created
            remove_empty(fresh)
        raise


def missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first: what creating
    ``path`` creates (:func:`remove_empty` takes them back after a failure)."""
    return [p for p in (path, *path.parents) if not p.exists()]


def remove_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is an empty folder; others stay."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _read_state(weights: Path, model: NumericDenoiser) -> dict[str, torch.Tensor]:
    try:
        state = load_file(str(weights))
    except OSError as e:
        raise CheckpointError(f"{weights}: cannot be read ({reason(e)})") from None
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights}: corrupt safetensors file ({one_line(e)})") from None
    check_shapes({k: tuple(v.shape) for k, v in state.items()}, model, str(weights))
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not match {CONFIG_FILE} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return state


def adapted_model(mcfg: TSModelConfig, adapter: dict, weights: Path) -> NumericDenoiser:
    """The denoiser of a LoRA-fine-tuned forecaster: the base it names (the packaged one, or its
    folder), checked by digest, its weights copied in (tsdiff.pretrained.init_from_base), the
    LoRA layout of ``adapter`` added and the adapter file ``weights`` loaded."""
    init = adapter.get("base") or {}
    base = load_base(init.get("path"))
    if init.get("sha256") and init["sha256"] != base.sha256:
        raise CheckpointError(
            f"{weights}: this adapter was trained on base {init.get('base')!r} with digest "
            f"{init['sha256'][:12]}..., but the base found has {base.sha256[:12]}..."
        )
    model = NumericDenoiser(mcfg)
    init_from_base(model, base)
    settings = {k: adapter[k] for k in ("rank", "alpha", "dropout", "targets", "train_also")}
    try:
        add_lora(model, **settings)
        load_adapter(model, load_file(str(weights)))
    except OSError as e:
        raise CheckpointError(f"{weights}: cannot be read ({reason(e)})") from None
    except (SafetensorError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{weights}: corrupt adapter ({one_line(e)})") from None
    return model


def _section(meta: dict, key: str, where: Path) -> dict:
    value = meta.get(key)
    if not isinstance(value, dict):
        raise CheckpointError(
            f"{where}: field {key!r} missing or not an object (got {type(value).__name__})"
        )
    return value


def _number(meta: dict, key: str, where: Path) -> float:
    value = meta.get(key, 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise CheckpointError(f"{where}: field {key!r}: expected a positive number, got {value!r}")
    return float(value)


def load_checkpoint(path: str | Path, device: torch.device | None = None) -> Checkpoint:
    """Read a directory written by :func:`save_checkpoint`; the model in eval mode on
    ``device`` (default: the CPU).

    Raises :class:`MissingCheckpointError` when the folder or one of its two files is missing,
    :class:`CheckpointError` (one line naming the file and the problem) for everything else."""
    path = Path(path)
    cfg_file, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not weights.is_file() and (path / ADAPTER_FILE).is_file():
        weights = path / ADAPTER_FILE
    if not cfg_file.is_file() or not weights.is_file():
        raise MissingCheckpointError(
            f"{path}: not a tsdiff checkpoint (expected {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    meta = read_json_object(cfg_file, str(path))
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{cfg_file}: not a tsdiff checkpoint (format {meta.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    parts = {k: _section(meta, k, cfg_file) for k in ("forecaster", "model", "columns")}
    try:
        config = ForecasterConfig(**sampler_of_old_checkpoint(parts["forecaster"]))
        columns = Columns(**parts["columns"])
        mcfg = TSModelConfig(**parts["model"])
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            shaped = NumericDenoiser(mcfg)
    except (ValueError, TypeError, KeyError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{cfg_file}: corrupt tsdiff config ({one_line(e)})") from None
    if "adapter" in meta:
        model = adapted_model(mcfg, _section(meta, "adapter", cfg_file), weights)
    else:
        state = _read_state(weights, shaped)
        model = NumericDenoiser(mcfg)
        model.load_state_dict(state)
    history, categories = meta.get("history", {}), meta.get("categories", {})
    if not isinstance(history, dict) or not isinstance(categories, dict):
        raise CheckpointError(f"{cfg_file}: fields 'history' and 'categories' must be objects")
    if device is not None:
        model.to(device)
    return Checkpoint(
        config=config,
        model=model.eval(),
        columns=columns,
        temperature=_number(meta, "temperature", cfg_file),
        spread=_number(meta, "spread", cfg_file),
        history=history,
        categories=categories,
    )
