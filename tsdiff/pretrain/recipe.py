"""The pretraining recipe: one univariate denoiser trained on the corpus, exported as the base.

    python -m tsdiff.pretrain --config configs/ts/pretrain.yaml [--resume auto]

trains a :class:`tsdiff.model.NumericDenoiser` (one channel, no calendar or covariate inputs,
context ``model.context_length``, any horizon up to the largest of ``corpus.horizons``) with the
training path of every fit (:class:`tsdiff.train.TSDiffModule`, :func:`tsdiff.train.fit_module`:
the masked-diffusion loss, AdamW, warmup-stable-decay) on :class:`tsdiff.pretrain.corpus.
PretrainBatches`, checkpointing ``out/.train/last.ckpt`` every ``checkpoint_every`` steps (a
killed run continues with ``--resume auto`` and ends with the weights of an uninterrupted one),
then writes the base (:func:`tsdiff.pretrained.save_base`: ``config.json`` +
``model.safetensors``) to ``out/base`` and, when ``export`` is set, there too (the package's
own base is ``tsdiff/pretrained/base``). Reproducible from ``seed``: the corpus, the batches and
the step noise are functions of it; ``training.max_time_s`` is a safety cap that, when it ends
a run before ``max_steps``, is recorded with the base (steps and windows seen).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from lm_core.outputs import atomic_write_text
from tsdiff.config import ForecasterConfig
from tsdiff.model_config import TSModelConfig
from tsdiff.pretrain.corpus import Corpus, CorpusConfig, PretrainBatches, first
from tsdiff.pretrained import BASE_NAME, Base, save_base
from tsdiff.train import TSDiffModule, fit_module


@dataclass
class BaseModelConfig:
    """Shape of the base denoiser."""

    context_length: int = 512
    patch_size: int = 16
    n_bins: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4


@dataclass
class PretrainTraining:
    """Optimisation of the pretraining run."""

    batch_size: int = 64
    max_steps: int = 4000
    max_time_s: float | None = None
    """Safety cap on the training wall-clock (None: none); the steps reached are recorded."""
    lr: float = 1e-3
    warmup_steps: int = 100
    threads: int = 2
    """torch CPU threads (a GPU run ignores it)."""
    accelerator: str = "cpu"
    devices: int | str = 1
    precision: str = "32-true"
    checkpoint_every: int = 100


@dataclass
class PretrainConfig:
    """Everything of a pretraining run (configs/ts/pretrain.yaml)."""

    seed: int = 0
    out: str = "runs/tsdiff-base"
    export: str | None = None
    """A second place to write the base (the package's: tsdiff/pretrained/base), its weights
    stored as float16 (under 2 MB; ``out/base`` keeps them exact)."""
    model: BaseModelConfig = field(default_factory=BaseModelConfig)
    training: PretrainTraining = field(default_factory=PretrainTraining)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)


def model_config(cfg: PretrainConfig) -> TSModelConfig:
    """The base's :class:`TSModelConfig`: univariate, no calendar or covariates, its
    ``prediction_length`` the largest pretraining horizon (it serves any shorter one)."""
    m = cfg.model
    return TSModelConfig(
        context_length=m.context_length, prediction_length=max(cfg.corpus.horizons),
        n_channels=1, patch_size=m.patch_size, n_bins=m.n_bins, d_model=m.d_model,
        n_layers=m.n_layers, n_heads=m.n_heads, time_features=[],
    )  # fmt: skip


def trainer_config(cfg: PretrainConfig) -> ForecasterConfig:
    """The Trainer settings of :func:`tsdiff.train.fit_module` (it reads a ForecasterConfig)."""
    t = cfg.training
    return ForecasterConfig(
        prediction_length=max(cfg.corpus.horizons), freq="h", context_length=cfg.model.context_length,
        max_steps=t.max_steps, max_time_s=t.max_time_s, batch_size=t.batch_size, lr=t.lr,
        seed=cfg.seed, accelerator=t.accelerator, devices=t.devices, precision=t.precision,
        progress=False,
    )  # fmt: skip


def pretrain(cfg: PretrainConfig, resume: str | None = None, log=print) -> Base:
    """Run the recipe; returns the exported :class:`tsdiff.pretrained.Base`."""
    t0 = time.monotonic()
    t = cfg.training
    if t.accelerator == "cpu":
        torch.set_num_threads(t.threads)
    out = Path(cfg.out)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    corpus = Corpus.build(cfg.corpus, cfg.seed)
    summary = corpus.summary()
    log(f"pretrain: corpus {json.dumps(summary)} ({time.monotonic() - t0:.0f} s)")
    mcfg = model_config(cfg)
    data = PretrainBatches(corpus, cfg.corpus, mcfg.context_length, t.batch_size, t.max_steps,
                           cfg.seed)  # fmt: skip
    loader = DataLoader(data, batch_size=1, collate_fn=first, shuffle=False)
    module = TSDiffModule(mcfg.to_dict(), lr=t.lr, max_steps=t.max_steps,
                          warmup_steps=t.warmup_steps, seed=cfg.seed)  # fmt: skip
    n_params = sum(p.numel() for p in module.model.parameters())
    log(f"pretrain: {n_params:,} parameters, {t.max_steps} steps of {t.batch_size} windows")
    t1 = time.monotonic()
    history = fit_module(
        module, loader, trainer_config(cfg), checkpoint_dir=out / ".train", resume=resume,
        checkpoint_every=t.checkpoint_every,
    )  # fmt: skip
    seconds = time.monotonic() - t1
    record = {
        "name": BASE_NAME,
        "seed": cfg.seed,
        "steps": history["steps"],
        "windows_seen": history["steps"] * t.batch_size,
        "parameters": n_params,
        "train_seconds_this_run": round(seconds, 1),
        "stopped_by": "max_steps" if history["steps"] >= t.max_steps else "max_time_s",
        "corpus": summary,
        "config": dataclasses.asdict(cfg),
        "torch_threads": torch.get_num_threads(),
    }
    base = Base(config=mcfg, model=module.model.eval(), meta=record)
    save_base(out / "base", base)
    if cfg.export:
        save_base(cfg.export, base, half=True)
    log(f"pretrain: base written to {out / 'base'}" + (f" and {cfg.export}" if cfg.export else ""))
    atomic_write_text(out / "pretrain.json", json.dumps(record, indent=1))
    return base
