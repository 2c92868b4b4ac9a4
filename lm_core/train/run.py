"""``lm-core fit``: train a masked diffusion LM (or the matched causal AR baseline) from YAML.

    lm-core fit --config configs/lm/tiny-masked.yaml [--section.key value ...]
    lm-core fit --config configs/lm/small-masked.yaml --print_config
    lm-core fit --help

Sections: ``model`` (:class:`~lm_core.config.ModelConfig`), ``objective``, ``optim``, ``data``,
``trainer`` (:class:`TrainerConfig`), and the top-level ``out_dir``, ``seed``, ``resume``,
``init_from``.

``data`` is a Lightning data module: by default :class:`~lm_core.data.datamodule.TextDataModule`
(its arguments given directly, ``data: {train: shakespeare, ...}``); for supervised fine-tuning
``data: {class_path: lm_core.data.SFTDataModule, init_args: {...}}`` with ``objective.kind: sft``
(see ``configs/lm/tiny-sft.yaml``; ``lm-core fit --data.help SFTDataModule`` lists its arguments).

``init_from: DIR`` starts from pretrained weights: an lm_core checkpoint directory or a
LLaDA-format one (:func:`lm_core.llada.load_any`). The model shape, MASK id and tokenizer are the
checkpoint's (the ``model`` section is then ignored); the optimiser and schedule start fresh. A
``resume`` checkpoint, when there is one, takes precedence (it holds the fine-tuned weights).

Outputs under ``out_dir``:

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
        for name in ("accumulate_grad_batches", "ckpt_every_n_steps"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v > 0):
                raise ConfigError(f"trainer.{name}: expected a positive integer, got {v!r}")


def build_parser():
    """The jsonargparse parser of ``lm-core fit`` (dataclass attribute docstrings are its help)."""
    import lightning as L
    from jsonargparse import ActionConfigFile, ArgumentParser, lazy_instance, set_parsing_settings

    from lm_core.data.datamodule import TextDataModule
    from lm_core.data.sft_datamodule import SFTDataModule  # noqa: F401 - resolvable class_path

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
        raise ConfigError(
            f"model.vocab_size: expected at least the tokenizer's {tokenizer.vocab_size} ids, "
            f"got {model.vocab_size}"
        )
    if token_budget is not None and token_budget > model.max_seq_len:
        raise ConfigError(
            f"{key}: sequences of {token_budget} tokens are longer than "
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


def check_data(objective: str, dm) -> None:
    """SFT batches go with the sft objective and only with it (or with dmax, which takes both)."""
    from lm_core.data.sft_datamodule import SFTDataModule

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
    from lm_core.llada import load_any

    if not Path(init_from).is_dir():
        raise ConfigError(f"init_from: checkpoint directory {init_from} does not exist")
    net, tok, meta = load_any(init_from)
    if tok is None:
        raise ConfigError(f"init_from: {init_from} has no tokenizer (tokenizer/ or tokenizer.json)")
    mask_id = meta.get("mask_id")
    mask_id = tok.mask_id if mask_id is None else int(mask_id)
    dm.set_tokenizer(tok)
    return net, mask_id


def epochs_to_steps(cfg, dm) -> int:
    """max_steps for ``trainer.max_epochs`` passes over the training batches (one process)."""
    t = cfg.trainer
    if t.max_epochs is None:
        return t.max_steps
    n_batches = len(dm.train_dataloader())
    ranks = (t.devices if isinstance(t.devices, int) else 1) * t.num_nodes
    per_epoch = max(1, n_batches // max(ranks, 1) // t.accumulate_grad_batches)
    return per_epoch * t.max_epochs


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

    from lm_core.lightning import DiffusionLM

    out_dir = Path(cfg.out_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = cfg.data
    check_data(cfg.objective.kind, dm)
    init_from = getattr(cfg, "init_from", None)
    pretrained, mask_id = load_init(init_from, dm) if init_from else (None, None)
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer
    key, length = data_length(dm)
    if pretrained is None:
        model_cfg, mask_id = resolve_model(cfg.model, tok, length, key), tok.mask_id
    else:
        model_cfg = resolve_model(pretrained.cfg, tok, length, key)
    ckpt = resume_path(cfg.resume, out_dir)
    if cfg.trainer.max_epochs is not None:
        cfg.trainer = dataclasses.replace(cfg.trainer, max_steps=epochs_to_steps(cfg, dm))
    module = DiffusionLM(
        model_cfg,
        cfg.objective,
        cfg.optim,
        max_steps=cfg.trainer.max_steps,
        mask_id=mask_id,
        seed=cfg.seed,
    )
    if pretrained is not None:
        module.net.load_state_dict(pretrained.state_dict())
    trainer = build_trainer(cfg, out_dir, tok, callbacks)
    if trainer.is_global_zero:
        n, n_ne = module.num_parameters(), module.num_parameters(exclude_embeddings=True)
        print(
            f"model: {n:,} parameters ({n_ne:,} without embeddings); objective {cfg.objective.kind}"
        )
        if pretrained is not None:
            print(f"initialised from {init_from} (its model shape and tokenizer)")
        if cfg.trainer.max_epochs is not None:
            print(f"{cfg.trainer.max_epochs} epochs = {cfg.trainer.max_steps} steps")
        if ckpt:
            print(f"resuming from {ckpt}")
    fit_resumable(trainer, module, dm, ckpt, seed=cfg.seed, out_dir=out_dir)
    return trainer, module


def fit_resumable(trainer, module, dm, ckpt, *, seed: int, out_dir) -> None:
    """``trainer.fit`` with the training loader wrapped for exact mid-epoch resume."""
    from torch.utils.data import DataLoader, IterableDataset

    from lm_core.lightning import ResumableLoader

    make_train = dm.train_dataloader

    def train_dataloader():
        loader = make_train()
        ds = getattr(loader, "dataset", None)
        ok = isinstance(loader, DataLoader) and (
            not isinstance(ds, IterableDataset) or hasattr(ds, "set_epoch")
        )
        return ResumableLoader(loader, trainer, seed=seed) if ok else loader

    dm.train_dataloader = train_dataloader
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    if trainer.is_global_zero:
        print(f"wrote {out_dir / 'final'} and {out_dir / 'last.ckpt'}")


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    run(cfg)
    return 0


__all__ = ["TrainerConfig", "build_parser", "main", "parse", "run"]
