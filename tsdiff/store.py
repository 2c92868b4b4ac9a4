"""A fitted forecaster on disk: ``config.json`` (plain JSON) and ``model.safetensors``.

:func:`save_checkpoint` writes both into a directory atomically (a temporary directory, then a
rename: :func:`lm_core.checkpoint.atomic_write_dir`); :func:`load_checkpoint` reads them back
(safetensors: no code is executed). The ``forecaster`` entry holds the flat
:class:`~tsdiff.config.ForecasterConfig` fields, as it always has, so checkpoints written
before the config was split into sections still load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lm_core.checkpoint import atomic_write_dir
from tsdiff.config import ForecasterConfig
from tsdiff.data.frames import Columns
from tsdiff.model import NumericDenoiser, TSModelConfig

FORMAT = "tsdiff"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


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


def save_checkpoint(path: str | Path, ck: Checkpoint) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into directory ``path`` (atomically)."""
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
    state = {k: v.contiguous() for k, v in ck.model.state_dict().items()}

    def write(tmp: Path) -> None:
        save_file(state, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, default=str))

    return atomic_write_dir(Path(path), write)


def load_checkpoint(path: str | Path, device: torch.device | None = None) -> Checkpoint:
    """Read a directory written by :func:`save_checkpoint`; the model in eval mode on
    ``device`` (default: where the config's accelerator says)."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"{path}: not a tsdiff checkpoint (expected {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    try:
        meta = json.loads((path / CONFIG_FILE).read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        config = ForecasterConfig(**meta["forecaster"])
        columns = Columns(**meta["columns"])
        model = NumericDenoiser(TSModelConfig(**meta["model"]))
        model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"{path}: corrupt tsdiff checkpoint ({e})") from e
    if device is not None:
        model.to(device)
    return Checkpoint(
        config=config,
        model=model.eval(),
        columns=columns,
        temperature=float(meta.get("temperature", 1.0)),
        spread=float(meta.get("spread", 1.0)),
        history=meta.get("history", {}),
        categories=meta.get("categories", {}),
    )
