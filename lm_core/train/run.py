"""The one training path: :func:`run` (a config namespace from :func:`lm_core.train.config.parse`)
builds the module for the objective, the Trainer (:func:`build_trainer`) and fits with exact
resume (:func:`fit_resumable`). ``lm-core fit``, the demo and the benchmarks call it.

Objective kinds ``masked``, ``sft``, ``ar`` and ``dmax`` train a :class:`DiffusionLM`;
``flow`` a :class:`~lm_core.train.flow.FlowLM` after its codec stage
(:func:`lm_core.train.flow.build_flow_module`).

``init_from: DIR`` starts from pretrained weights: an lm_core checkpoint directory or a
LLaDA-format one (:func:`lm_core.text.llada.load_any`). The model shape, MASK id and tokenizer
are the checkpoint's (the ``model`` section is then ignored); the optimiser and schedule start fresh. A
``resume`` checkpoint, when there is one, takes precedence (it holds the fine-tuned weights).

Outputs under ``out_dir`` (checked writable before anything else; one run at a time writes it,
a second one fails at once, see :func:`lm_core.checkpoint.output_lock`):

- ``last.ckpt``: Lightning's checkpoint (weights, optimiser, schedule, loops, data position,
  EMA) every ``trainer.ckpt_every_n_steps`` steps, for exact resume. ``resume: auto`` continues
  from it when present. It is loaded with ``torch.load(weights_only=True)``: everything this
  project puts in it is tensors, numbers, strings and plain containers. Written atomically in
  ``out_dir`` (:mod:`lm_core.train.checkpoint_io`); the one before is kept as ``last-prev.ckpt``
  and a resume that cannot read ``last.ckpt`` says so in one line and continues from it.
- ``latest/`` and ``best/`` (after each validation) and ``final/``: lm_core checkpoint
  directories (safetensors + config.json + tokenizer), written atomically.
- ``logs/``: CSV metrics (loss, lr, tokens/s, masked_frac, val ELBO bits/token, perplexity bound).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, IterableDataset

from lm_core.checkpoint import ensure_writable, output_lock
from lm_core.train.callbacks import ExportCallback, LastOnStop, LogLine, ResumableLoader
from lm_core.train.checkpoint_io import AtomicCheckpointIO
from lm_core.train.config import TrainerConfig
from lm_core.train.flow import build_flow_module
from lm_core.train.module import DiffusionLM
from lm_core.train.setup import (
    check_data,
    data_length,
    epochs_to_steps,
    load_init,
    read_init,
    resolve_model,
    resume_path,
)
from lm_core.train.sharding import (
    ScaleOptions,
    check_fsdp,
    fsdp_strategy,
    is_fsdp,
    launch_rank,
)


def resolve_precision(trainer: TrainerConfig) -> str:
    """``trainer.precision``, with ``auto`` = bf16-mixed on CUDA, 32-true elsewhere."""
    if trainer.precision != "auto":
        return trainer.precision
    gpu = trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if gpu else "32-true"


def build_trainer(cfg, out_dir: Path, tokenizer, callbacks=()):
    """The Lightning Trainer with checkpointing, export, log-line and progress-bar callbacks."""
    t: TrainerConfig = cfg.trainer
    precision, strategy = resolve_precision(t), t.strategy
    if is_fsdp(t.strategy):  # FSDP2 casts parameters itself; Lightning runs at 32-true
        precision, strategy = "32-true", fsdp_strategy()
    cbs = [
        ModelCheckpoint(
            dirpath=out_dir, save_last=True, save_top_k=0, every_n_train_steps=t.ckpt_every_n_steps
        ),
        ExportCallback(out_dir, tokenizer),
        LastOnStop(out_dir),
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
        strategy=strategy,
        num_nodes=t.num_nodes,
        precision=precision,
        max_time=t.max_time,
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
        plugins=[AtomicCheckpointIO()],
        logger=CSVLogger(out_dir, name="logs"),
        default_root_dir=out_dir,
    )


def build_lm_module(cfg, out_dir: Path) -> tuple[DiffusionLM, str | None, list[str]]:
    """Data set up, model shape resolved (or taken from ``init_from``), :class:`DiffusionLM` built.

    Returns (module, checkpoint to resume from or None, lines to print on rank 0)."""
    dm = cfg.data
    check_data(cfg.objective.kind, dm)
    init_from = getattr(cfg, "init_from", None)
    pretrained, mask_id, init_cfg = None, None, None
    if init_from and is_fsdp(cfg.trainer.strategy) and launch_rank() != 0:
        init_cfg, mask_id = read_init(init_from, dm)  # no weights: rank 0 broadcasts them
    elif init_from:
        pretrained, mask_id = load_init(init_from, dm)
        init_cfg = pretrained.cfg
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer
    key, length = data_length(dm)
    if init_cfg is None:
        model_cfg, mask_id = resolve_model(cfg.model, tok, length, key), tok.mask_id
    else:
        model_cfg = resolve_model(init_cfg, tok, length, key)
    ckpt = resume_path(cfg.resume, out_dir)
    scale = scale_options(cfg, init_from)
    if cfg.trainer.max_epochs is not None:
        cfg.trainer = dataclasses.replace(cfg.trainer, max_steps=epochs_to_steps(cfg, dm))
    module = DiffusionLM(
        model_cfg,
        cfg.objective,
        cfg.optim,
        max_steps=cfg.trainer.max_steps,
        mask_id=mask_id,
        seed=cfg.seed,
        scale=scale,
    )
    if pretrained is not None and not scale.fsdp:  # under FSDP: in configure_model, rank 0
        module.net.load_state_dict(pretrained.state_dict())
    del pretrained
    n, n_ne = module.num_parameters(), module.num_parameters(exclude_embeddings=True)
    notes = [
        f"model: {n:,} parameters ({n_ne:,} without embeddings); objective {cfg.objective.kind}"
    ]
    if init_from:
        notes.append(f"initialised from {init_from} (its model shape and tokenizer)")
    if cfg.trainer.max_epochs is not None:
        notes.append(f"{cfg.trainer.max_epochs} epochs = {cfg.trainer.max_steps} steps")
    return module, ckpt, notes


def scale_options(cfg, init_from: str | None) -> ScaleOptions:
    """The module's build options from the trainer section (refusals of fsdp in one line)."""
    t = cfg.trainer
    fsdp = is_fsdp(t.strategy)
    return ScaleOptions(
        fsdp=fsdp,
        bf16=fsdp and resolve_precision(t).startswith("bf16"),
        activation_checkpointing=t.activation_checkpointing,
        compile=t.compile,
        init_from=init_from if fsdp else None,
    )


def accelerator_is_cuda(t: TrainerConfig) -> bool:
    """Whether the run's accelerator resolves to CUDA GPUs."""
    return t.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


MODULE_BUILDERS = {"flow": build_flow_module}
"""Objective kinds whose training module is not :class:`DiffusionLM` -> their builder."""


def run(cfg, callbacks=()):
    """Train from an instantiated config namespace (:func:`lm_core.train.config.parse`).

    Seeds everything with ``cfg.seed``, builds the module for ``cfg.objective.kind``
    (:data:`MODULE_BUILDERS`, else :func:`build_lm_module`), the Trainer, and fits with exact
    resume. Returns (trainer, module)."""
    out_dir = Path(cfg.out_dir)
    ensure_writable(out_dir)
    if is_fsdp(cfg.trainer.strategy):
        check_fsdp(cfg, accelerator_is_cuda(cfg.trainer))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    build = MODULE_BUILDERS.get(cfg.objective.kind, build_lm_module)
    module, ckpt, notes = build(cfg, out_dir)
    trainer = build_trainer(cfg, out_dir, cfg.data.tokenizer, callbacks)
    if trainer.is_global_zero:
        for line in notes + ([f"resuming from {ckpt}"] if ckpt else []):
            print(line)
    fit_resumable(trainer, module, cfg.data, ckpt, seed=cfg.seed, out_dir=out_dir)
    return trainer, module


def fit_resumable(trainer, module, dm, ckpt, *, seed: int, out_dir) -> None:
    """``trainer.fit`` with the training loader wrapped for exact mid-epoch resume."""
    make_train = dm.train_dataloader

    def train_dataloader():
        loader = make_train()
        ds = getattr(loader, "dataset", None)
        ok = isinstance(loader, DataLoader) and (
            not isinstance(ds, IterableDataset) or hasattr(ds, "set_epoch")
        )
        return ResumableLoader(loader, trainer, seed=seed) if ok else loader

    dm.train_dataloader = train_dataloader
    with output_lock(out_dir) if trainer.is_global_zero else contextlib.nullcontext():
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    if trainer.is_global_zero:
        print(f"wrote {out_dir / 'final'} and {out_dir / 'last.ckpt'}")
