"""``lm-core fit``: train a masked diffusion LM (or the matched causal AR baseline) from YAML.

    lm-core fit --config configs/lm/tiny-masked.yaml [--section.key value ...]
    lm-core fit --config configs/lm/small-masked.yaml --print_config
    lm-core fit --help

Sections: ``model`` (:class:`~lm_core.config.ModelConfig`), ``objective``, ``optim``, ``data``
(:class:`~lm_core.data.datamodule.TextDataModule`), ``trainer`` (:class:`TrainerConfig`), and the
top-level ``out_dir``, ``seed``, ``resume``. Outputs under ``out_dir``:

- ``last.ckpt``: Lightning's checkpoint (weights, optimiser, schedule, loops, data position,
  EMA) every ``trainer.ckpt_every_n_steps`` steps, for exact resume. ``resume: auto`` continues
  from it when present. It is loaded with ``torch.load(weights_only=True)``: everything this
  project puts in it is tensors, numbers, strings and plain containers.
- ``latest/`` and ``best/`` (after each validation) and ``final/``: lm_core checkpoint
  directories (safetensors + config.json + tokenizer), written atomically.
- ``logs/``: CSV metrics (loss, lr, tokens/s, masked_frac, val ELBO bits/token, perplexity bound).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from lm_core.config import ConfigError, ModelConfig, ObjectiveConfig, OptimConfig


@dataclass
class TrainerConfig:
    """Lightning Trainer settings; devices, strategy and nodes are all it takes to scale out."""

    max_steps: int = 1000
    """Optimiser steps of the run (the WSD schedule's length)."""
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

    def __post_init__(self) -> None:
        for name in ("max_steps", "num_nodes", "val_check_interval", "log_every_n_steps"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v > 0):
                raise ConfigError(f"trainer.{name}: expected a positive integer, got {v!r}")
        for name in ("accumulate_grad_batches", "ckpt_every_n_steps"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v > 0):
                raise ConfigError(f"trainer.{name}: expected a positive integer, got {v!r}")


def build_parser():
    """The jsonargparse parser of ``lm-core fit`` (dataclass attribute docstrings are its help)."""
    from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

    from lm_core.data.datamodule import TextDataModule

    set_parsing_settings(docstring_parse_attribute_docstrings=True)

    p = ArgumentParser(
        prog="lm-core fit",
        description="Train a masked diffusion LM or the matched causal AR baseline.",
        exit_on_error=False,
    )
    p.add_argument("--config", action=ActionConfigFile, help="YAML config (configs/lm/*.yaml).")
    p.add_class_arguments(ModelConfig, "model")
    p.add_class_arguments(ObjectiveConfig, "objective")
    p.add_class_arguments(OptimConfig, "optim")
    p.add_class_arguments(TextDataModule, "data")
    p.add_class_arguments(TrainerConfig, "trainer")
    p.add_argument("--out_dir", type=str, default="runs/lm", help="Output directory.")
    p.add_argument("--seed", type=int, default=0, help="Seed of weights, data order and masks.")
    p.add_argument(
        "--resume",
        type=str | None,
        default="auto",
        help="auto: continue from out_dir/last.ckpt if present; null: start fresh; or a .ckpt path.",
    )
    return p


def parse(argv: list[str] | None):
    """argv -> instantiated namespace (model, objective, optim, data, trainer, ...).

    Raises ConfigError (one line, naming the key) for unknown keys, bad types and bad values.
    """
    from jsonargparse import ArgumentError

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


def resolve_model(model: ModelConfig, tokenizer, token_budget: int | None) -> ModelConfig:
    """Fill ``vocab_size`` from the tokenizer and check the data fits the model."""
    if model.vocab_size is None:
        model = dataclasses.replace(model, vocab_size=tokenizer.vocab_size)
    elif model.vocab_size < tokenizer.vocab_size:
        raise ConfigError(
            f"model.vocab_size: expected at least the tokenizer's {tokenizer.vocab_size} ids, "
            f"got {model.vocab_size}"
        )
    if token_budget is not None and token_budget > model.max_seq_len:
        raise ConfigError(
            f"data.token_budget: sequences of {token_budget} tokens are longer than "
            f"model.max_seq_len={model.max_seq_len}"
        )
    return model


def resolve_precision(trainer: TrainerConfig) -> str:
    import torch

    if trainer.precision != "auto":
        return trainer.precision
    gpu = trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if gpu else "32-true"


def resume_path(resume: str | None, out_dir: Path) -> str | None:
    if resume is None or resume in ("none", "null", ""):
        return None
    if resume == "auto":
        last = out_dir / "last.ckpt"
        return str(last) if last.is_file() else None
    if not Path(resume).is_file():
        raise FileNotFoundError(f"resume: checkpoint {resume} does not exist")
    return resume


def build_trainer(cfg, out_dir: Path, tokenizer, callbacks=()):
    """The Lightning Trainer with checkpointing, export, log-line and progress-bar callbacks."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from lm_core.lightning import ExportCallback, LogLine

    t: TrainerConfig = cfg.trainer
    cbs = [
        ModelCheckpoint(
            dirpath=out_dir, save_last=True, save_top_k=0, every_n_train_steps=t.ckpt_every_n_steps
        ),
        ExportCallback(out_dir, tokenizer),
        LogLine(t.log_every_n_steps),
        *callbacks,
    ]
    if t.progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, min(t.log_every_n_steps, 10))))
    return L.Trainer(
        max_steps=t.max_steps,
        max_epochs=-1,
        devices=t.devices,
        accelerator=t.accelerator,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=resolve_precision(t),
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=None,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=cfg.optim.grad_clip or None,
        num_sanity_val_steps=0,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        callbacks=cbs,
        logger=CSVLogger(out_dir, name="logs"),
        default_root_dir=out_dir,
    )


def run(cfg, callbacks=()):
    """Train from an instantiated config namespace; returns (trainer, module)."""
    if cfg.objective.kind == "flow":  # flow LM in a frozen encoder's latents (lm_core.flow)
        from lm_core.flow.train import run_flow

        return run_flow(cfg, callbacks)
    import lightning as L
    from torch.utils.data import DataLoader, IterableDataset

    from lm_core.lightning import DiffusionLM, ResumableLoader

    out_dir = Path(cfg.out_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = cfg.data
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer
    model_cfg = resolve_model(cfg.model, tok, getattr(dm, "token_budget", None))
    ckpt = resume_path(cfg.resume, out_dir)
    module = DiffusionLM(
        model_cfg,
        cfg.objective,
        cfg.optim,
        max_steps=cfg.trainer.max_steps,
        mask_id=tok.mask_id,
        seed=cfg.seed,
    )
    trainer = build_trainer(cfg, out_dir, tok, callbacks)
    if trainer.is_global_zero:
        n, n_ne = module.num_parameters(), module.num_parameters(exclude_embeddings=True)
        print(
            f"model: {n:,} parameters ({n_ne:,} without embeddings); objective {cfg.objective.kind}"
        )
        if ckpt:
            print(f"resuming from {ckpt}")
    make_train = dm.train_dataloader

    def train_dataloader():
        loader = make_train()
        ds = getattr(loader, "dataset", None)
        ok = isinstance(loader, DataLoader) and (
            not isinstance(ds, IterableDataset) or hasattr(ds, "set_epoch")
        )
        return ResumableLoader(loader, trainer, seed=cfg.seed) if ok else loader

    dm.train_dataloader = train_dataloader
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    if trainer.is_global_zero:
        print(f"wrote {out_dir / 'final'} and {out_dir / 'last.ckpt'}")
    return trainer, module


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    run(cfg)
    return 0


__all__ = ["TrainerConfig", "build_parser", "main", "parse", "run"]
