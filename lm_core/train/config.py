"""The configuration of a training run: :class:`TrainerConfig` and the YAML / argv parser.

:func:`parse` turns a YAML file and ``--section.key value`` overrides into the instantiated
namespace that :func:`lm_core.train.run.run` takes (``lm-core fit``, the demo and the benchmarks
all build their run this way). Sections: ``model`` (:class:`~lm_core.config.ModelConfig`),
``objective``, ``optim``, ``data``, ``trainer`` (:class:`TrainerConfig`), and the top-level
``out_dir``, ``seed``, ``resume``, ``init_from``.

``data`` is a Lightning data module: by default :class:`~lm_core.data.datamodule.TextDataModule`
(its arguments given directly, ``data: {train: shakespeare, ...}``); for supervised fine-tuning
``data: {class_path: lm_core.data.SFTDataModule, init_args: {...}}`` with ``objective.kind: sft``
(see ``configs/lm/tiny-sft.yaml``; ``lm-core fit --data.help SFTDataModule`` lists its arguments).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
from jsonargparse import (
    ActionConfigFile,
    ArgumentError,
    ArgumentParser,
    lazy_instance,
    set_parsing_settings,
)

from lm_core.config import ConfigError, ModelConfig, ObjectiveConfig, OptimConfig
from lm_core.data.datamodule import TextDataModule
from lm_core.data.sft_datamodule import SFTDataModule  # noqa: F401 - resolvable class_path


@dataclass
class TrainerConfig:
    """Lightning Trainer settings; devices, strategy and nodes are all it takes to scale out."""

    max_steps: int = 1000
    """Optimiser steps of the run (the WSD schedule's length)."""
    max_epochs: int | None = None
    """If set, the run is this many passes over the training batches instead: max_steps is
    derived from the number of batches per epoch (counted for one process)."""
    devices: int | str = "auto"
    """Devices per node (an int, or "auto")."""
    accelerator: str = "auto"
    """cpu, gpu, cuda, mps or auto."""
    strategy: str = "auto"
    """auto, ddp, fsdp, deepspeed ... (any Lightning strategy name)."""
    num_nodes: int = 1
    """Number of machines."""
    precision: str = "auto"
    """Lightning precision: auto (bf16-mixed on CUDA, 32-true elsewhere), 32-true, bf16-mixed, ..."""
    val_check_interval: int = 200
    """Validate every this many training batches."""
    limit_val_batches: int | float = 1.0
    """Validation batches per validation (an int count or a fraction)."""
    log_every_n_steps: int = 50
    """Logging (CSV and the readable log line) interval in steps."""
    accumulate_grad_batches: int = 1
    """Micro-batches per optimiser step."""
    ckpt_every_n_steps: int = 100
    """Write last.ckpt (exact-resume checkpoint) every this many optimiser steps."""
    progress_bar: bool = True
    """Show Lightning's TQDM progress bar."""
    max_time: str | None = None
    """Wall-clock budget "DD:HH:MM:SS" (Lightning's Timer): training stops when it is spent,
    and the run still writes final/ and last.ckpt."""
    activation_checkpointing: bool = False
    """Recompute each Transformer block in backward instead of storing its activations (only
    block inputs are kept): less memory for about a third more compute."""
    compile: bool = False
    """torch.compile each Transformer block (GPU; the first steps compile)."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "num_nodes", "val_check_interval", "log_every_n_steps"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v > 0):
                raise ConfigError(f"trainer.{name}: expected a positive integer, got {v!r}")
        if self.max_epochs is not None and not (
            isinstance(self.max_epochs, int) and self.max_epochs > 0
        ):
            raise ConfigError(
                f"trainer.max_epochs: expected a positive integer or null, got {self.max_epochs!r}"
            )
        if self.max_time is not None and not _is_duration(self.max_time):
            raise ConfigError(
                f"trainer.max_time: expected DD:HH:MM:SS (e.g. 00:00:30:00), got {self.max_time!r}"
            )
        for name in ("accumulate_grad_batches", "ckpt_every_n_steps"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v > 0):
                raise ConfigError(f"trainer.{name}: expected a positive integer, got {v!r}")


def _is_duration(value: str) -> bool:
    parts = str(value).split(":")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def build_parser():
    """The jsonargparse parser of a training run (``lm-core fit``; dataclass attribute docstrings
    are its help)."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)

    p = ArgumentParser(
        prog="lm-core fit",
        description="Train a masked diffusion LM or the matched causal AR baseline. "
        "--dry-run [--gpu-gib G]: build the model on the meta device, print its parameters and "
        "the memory per GPU (weights, gradients, optimizer state, activations), and exit.",
        exit_on_error=False,
    )
    p.add_argument("--config", action=ActionConfigFile, help="YAML config (configs/lm/*.yaml).")
    p.add_class_arguments(ModelConfig, "model")
    p.add_class_arguments(ObjectiveConfig, "objective")
    p.add_class_arguments(OptimConfig, "optim")
    p.add_subclass_arguments(
        L.LightningDataModule,
        "data",
        default=lazy_instance(TextDataModule),
        required=False,
        help="Data module: TextDataModule (default; give its arguments directly) or "
        "class_path lm_core.data.SFTDataModule with init_args. --data.help CLASS lists arguments.",
    )
    p.add_class_arguments(TrainerConfig, "trainer")
    p.add_argument("--out_dir", type=str, default="runs/lm", help="Output directory.")
    p.add_argument("--seed", type=int, default=0, help="Seed of weights, data order and masks.")
    p.add_argument(
        "--resume",
        type=str | None,
        default="auto",
        help="auto: continue from out_dir/last.ckpt if present; null: start fresh; or a .ckpt path.",
    )
    p.add_argument(
        "--init_from",
        type=str | None,
        default=None,
        help="Start from the weights (and tokenizer) of an lm_core or LLaDA-format checkpoint dir.",
    )
    return p


def parse(argv: list[str] | None):
    """argv -> instantiated namespace (model, objective, optim, data, trainer, ...).

    Raises ConfigError (one line, naming the key) for unknown keys, bad types and bad values.
    """
    parser = build_parser()
    try:
        cfg = parser.parse_args(argv)
    except ArgumentError as e:
        raise ConfigError(_one_line(str(e))) from None
    try:
        return parser.instantiate(cfg)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(_one_line(str(e))) from None


def _one_line(msg: str) -> str:
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    return "; ".join(lines[:3]) if lines else "invalid configuration"
