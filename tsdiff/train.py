"""Training, one path for every front end (:class:`tsdiff.Forecaster` and
:class:`tsdiff.gluonts.TSDiffEstimator`): the model config from the data and the forecaster
config, the hold-out of validation windows, the loader of training windows, the
LightningModule and the Trainer.

The loss of each mode is looked up in ``LOSSES`` (masked: lm_core's masked-diffusion ELBO over
horizon cells; flow: the velocity loss); the module only calls it. The optimiser is AdamW with
lm_core's warmup-stable-decay schedule. Under a wall-clock budget (``Trainer(max_time=...)``) the
schedule follows the share of the budget spent as well as the step count, so a run cut by time
still ends its learning-rate decay.

Exact resume: the random numbers of training step ``k`` (loss noise, dropout) are drawn after
seeding with a function of (seed, k), and batch ``k`` holds training windows ``k * B .. k * B +
B - 1``, each a fixed draw of (seed, index) (:class:`tsdiff.data.windows.TrainWindows`). With a
checkpoint folder (:func:`fit_module`), Lightning's ``last.ckpt`` is written there every
``checkpoint_every`` steps (atomically, the one before kept as ``last-prev.ckpt``:
:class:`lm_core.train.checkpoint_io.AtomicCheckpointIO`), and a run resumed from it continues
with the next batch: it ends with the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from torch.utils.data import DataLoader

from lm_core.checkpoint import previous_path
from lm_core.schedule import wsd_scheduler
from lm_core.train.callbacks import ResumableLoader
from lm_core.train.checkpoint_io import AtomicCheckpointIO
from tsdiff.config import ForecasterConfig
from tsdiff.data.frames import Series
from tsdiff.data.windows import TrainWindows, collate, make_window, split_series
from tsdiff.diffusion import horizon_loss
from tsdiff.encoding import resolve_domain
from tsdiff.features import Calendar, feature_names
from tsdiff.flow import flow_loss
from tsdiff.model import NumericDenoiser, TSModelConfig

LOSSES = {"masked": horizon_loss, "flow": flow_loss}


def training_loss(model: NumericDenoiser, batch: dict, *, generator=None):
    """The mode's objective: masked-diffusion ELBO (masked) or velocity loss (flow)."""
    return LOSSES[model.cfg.mode](model, batch, generator=generator)


class TSDiffModule(L.LightningModule):
    """Trains a :class:`NumericDenoiser` on batches of windows (tsdiff.data.windows shapes)."""

    def __init__(
        self,
        model_config: dict,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        max_steps: int = 1000,
        warmup_steps: int = 50,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = NumericDenoiser(TSModelConfig(**model_config))

    def step_seed(self, step: int, rank: int = 0) -> int:
        """The seed of training step ``step``'s random numbers on process ``rank``: a function
        of (seed, step, rank) only, so that a resumed run draws what an uninterrupted one does."""
        s = (int(self.hparams.seed) * 1_000_003 + int(step) + 1) % (2**61 - 1)
        return (s * 1_000_003 + int(rank)) % (2**61 - 1) if rank else s

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        torch.manual_seed(self.step_seed(self.global_step, self.global_rank))  # noise, dropout
        loss, stats = training_loss(self.model, batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["ctx"].shape[0])
        self.log("masked_frac", stats["masked_frac"], batch_size=batch["ctx"].shape[0])
        return loss

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        timer = next((cb for cb in self.trainer.callbacks if isinstance(cb, Timer)), None)
        if timer is None:
            return
        spent = timer.time_elapsed("train")
        left = timer.time_remaining("train")
        if left is None or spent + left <= 0:
            return
        self._wsd.time_fraction = min(1.0, spent / (spent + left))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        g = torch.Generator(device=batch["ctx"].device).manual_seed(batch_idx)
        loss, _ = training_loss(self.model, batch, generator=g)
        self.log("val_loss", loss, prog_bar=True, batch_size=batch["ctx"].shape[0], sync_dist=True)

    def configure_optimizers(self):
        decay, no_decay = [], []  # frozen parameters (a base under LoRA adapters) stay out
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.dim() < 2 or "emb" in name else decay).append(p)
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.hparams.lr,
            betas=(0.9, 0.95),
        )
        sched = wsd_scheduler(
            opt,
            max_steps=self.hparams.max_steps,
            warmup_steps=self.hparams.warmup_steps,
            decay_fraction=0.3,
            min_lr_ratio=0.05,
        )
        self._wsd = sched.lr_lambdas[0]  # the WSDMultiplier that on_train_batch_start updates
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# ---------------------------------------------------------------------------- model config
def global_stats(arrays: list[np.ndarray]) -> list[list[float]]:
    """(mean, std) per column of the stacked [T_i, K] arrays, NaN ignored; std floored so that a
    constant column scales by 1 (its values then enter as offsets from the mean)."""
    x = np.concatenate(arrays, 0).astype(np.float64) if arrays else np.zeros((0, 0))
    out = []
    for k in range(x.shape[1]):
        col = x[:, k][~np.isnan(x[:, k])]
        mu = float(col.mean()) if col.size else 0.0
        sd = float(col.std()) if col.size else 1.0
        out.append([mu, sd if sd > 1e-6 * max(1.0, abs(mu)) else 1.0])
    return out


def is_independent(config: ForecasterConfig, n_targets: int) -> bool:
    """True when channels are forecast independently (``channels="independent"``, C > 1)."""
    return config.channels == "independent" and n_targets > 1


def model_config(
    config: ForecasterConfig,
    series: list[Series],
    cardinalities: list[int],
    calendar: Calendar | None = None,
    lags: list[int] | tuple[int, ...] = (),
    targets: list[str] | None = None,
) -> TSModelConfig:
    """The denoiser's config: every model option of ``config``, the shapes of ``series`` (all of
    them share one layout) and the number of categories of each static categorical column.
    Channel-independent models see one channel a sequence, its index a further category.
    ``calendar``/``lags``: the inputs chosen at fit time (tsdiff.features; None: the legacy
    calendar of the frequency). ``config.domain`` is resolved per target channel (named
    ``targets``, default "0", "1", ...) from the values of ``series``
    (:func:`tsdiff.encoding.resolve_domain`)."""
    c, s = config, series[0]
    names = list(targets) if targets is not None else [str(k) for k in range(s.target.shape[1])]
    values = np.concatenate([x.target for x in series], 0).astype(np.float64)
    glob = c.covariate_scaling == "global"  # training statistics only where they are used
    cards = list(cardinalities)
    independent = is_independent(c, s.target.shape[1])
    if independent:  # one univariate channel per sequence, its index a category
        cards.append(s.target.shape[1])
    return TSModelConfig(
        context_length=c.context_length,
        prediction_length=c.prediction_length,
        n_channels=1 if independent else s.target.shape[1],
        patch_size=min(c.patch_size, c.context_length),
        n_bins=c.n_bins,
        mode=c.mode,
        scale_features=c.scale_features,
        covariate_scaling=c.covariate_scaling,
        past_cov_stats=global_stats([x.past_cov for x in series]) if glob else [],
        future_cov_stats=global_stats([x.future_cov for x in series]) if glob else [],
        d_model=c.d_model,
        n_layers=c.n_layers,
        n_heads=c.n_heads,
        dropout=c.dropout,
        n_time_features=calendar.n_features if calendar else len(feature_names(c.freq)),
        time_features=list(calendar.names) if calendar else None,
        lags=list(lags),
        n_past_covariates=s.past_cov.shape[1],
        n_future_covariates=s.future_cov.shape[1],
        n_static_real=len(s.static_real),
        static_cardinalities=cards,
        domain=resolve_domain(c.domain, names, values),
    )


def build_module(config: ForecasterConfig, mcfg: TSModelConfig) -> TSDiffModule:
    """The LightningModule of a fresh denoiser with the optimiser settings of ``config``."""
    warmup = min(100, config.max_steps // 10)
    return TSDiffModule(mcfg.to_dict(), lr=config.lr, max_steps=config.max_steps,
                        warmup_steps=warmup, seed=config.seed)  # fmt: skip


# ---------------------------------------------------------------------------- data
def truncate(s: Series, n: int) -> Series:
    """The first n steps of a series."""
    return dataclasses.replace(
        s, index=s.index[:n], target=s.target[:n], time_feat=s.time_feat[:n],
        past_cov=s.past_cov[:n], future_cov=s.future_cov[:n],
    )  # fmt: skip


def holdout(
    series: list[Series], config: ForecasterConfig, target_windows: int = 32, lags=()
) -> tuple[list[Series], list[dict]]:
    """Carve validation windows from the end of each series (training stops before them).

    Each series gives its last k horizons (k = ceil(32 / items), at most
    ``config.validation_per_series`` and at most ``config.validation_fraction`` of its length)
    as validation windows; a series too short to spare one horizon stays whole in training.

    Returns:
        (training series, validation windows as :func:`tsdiff.data.windows.make_window` dicts)
    """
    H, Lc = config.prediction_length, config.context_length
    k = min(config.validation_per_series, max(1, -(-target_windows // len(series))))
    train, val = [], []
    for s in series:
        k_s = min(k, int(config.validation_fraction * len(s)) // H)
        if k_s < 1:
            train.append(s)
            continue
        train.append(truncate(s, len(s) - k_s * H))
        val += [make_window(s, len(s) - j * H, Lc, H, config.freq, lags) for j in range(1, k_s + 1)]
    rng = np.random.default_rng(config.seed)
    if len(val) > 4 * target_windows:
        val = [val[i] for i in rng.choice(len(val), 4 * target_windows, replace=False)]
    return train, val


def train_loader(series: list[Series], config: ForecasterConfig, lags=()) -> DataLoader:
    """``max_steps * batch_size`` random training windows of ``series`` in batches
    (channel-independent configs cut every series into its univariate channels), with the
    seasonal ``lags`` (tsdiff.data.windows.make_window)."""
    c = config
    if is_independent(c, series[0].target.shape[1]):
        series = split_series(series)
    data = TrainWindows(
        series, c.context_length, c.prediction_length, c.freq,
        n_windows=c.max_steps * c.batch_size, seed=c.seed, lags=lags,
    )  # fmt: skip
    return DataLoader(
        data,
        batch_size=c.batch_size,
        collate_fn=collate,
        shuffle=False,
        num_workers=c.num_workers,
        persistent_workers=c.num_workers > 0,
    )


# ---------------------------------------------------------------------------- trainer
LAST = "last.ckpt"
"""Lightning's checkpoint of the latest step in a checkpoint folder (``last-prev.ckpt``: the one
before)."""


def resume_checkpoint(resume: str | Path | None, checkpoint_dir: str | Path | None) -> str | None:
    """The checkpoint a fit continues from: None for ``resume`` None (a fresh start);
    ``checkpoint_dir/last.ckpt`` for ``"auto"`` when there is one (or its previous one), else
    None; else the file ``resume`` (FileNotFoundError naming it when neither it nor its
    ``-prev`` file exists)."""
    if resume is None:
        return None
    if str(resume) == "auto":
        if checkpoint_dir is None:
            raise ValueError("resume: 'auto' needs a checkpoint folder to look in")
        last = Path(checkpoint_dir) / LAST
        return str(last) if last.is_file() or previous_path(last).is_file() else None
    if not Path(resume).is_file() and not previous_path(resume).is_file():
        raise FileNotFoundError(f"resume: no checkpoint file {str(resume)!r}")
    return str(resume)


def build_trainer(
    config: ForecasterConfig,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 100,
) -> L.Trainer:
    """The Trainer of :func:`fit_module`: max_steps / max_time_s, no logger; with a
    ``checkpoint_dir``, ``last.ckpt`` there every ``checkpoint_every`` steps (atomic writes)."""
    c = config
    ckpt = {}
    if checkpoint_dir is not None:
        n = checkpoint_every
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"checkpoint_every: expected a positive integer, got {n!r}")
        every = ModelCheckpoint(
            dirpath=checkpoint_dir, save_last=True, save_top_k=0,
            every_n_train_steps=checkpoint_every,
        )  # fmt: skip
        ckpt = {"callbacks": [every], "plugins": [AtomicCheckpointIO()]}
    return L.Trainer(
        max_steps=c.max_steps,
        max_time={"seconds": c.max_time_s} if c.max_time_s else None,
        accelerator=c.accelerator,
        devices=c.devices,
        precision=c.precision,
        logger=False,
        enable_checkpointing=checkpoint_dir is not None,
        enable_progress_bar=c.progress,
        enable_model_summary=False,
        gradient_clip_val=1.0,
        default_root_dir=checkpoint_dir,
        **ckpt,
    )


@contextlib.contextmanager
def quiet_lightning(quiet: bool = True):
    """Without a progress bar, a fit prints nothing of Lightning's own: its start-up lines (GPU /
    TPU available, tips) go below the log level, and the warning about a ``validation_step``
    with no validation loader (the module validates only where a front end gives windows) and
    Lightning's internal deprecation warning are ignored. Levels and filters are restored on exit."""
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*`validation_step` but have no `val_dataloader`.*")
            # Lightning's own use of a torch API that torch deprecated: nothing a user can act on
            warnings.filterwarnings(
                "ignore", r".*isinstance\(treespec, LeafSpec\)` is deprecated.*"
            )
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def fit_module(
    module: TSDiffModule,
    loader: DataLoader,
    config: ForecasterConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: str | Path | None = None,
    checkpoint_every: int = 100,
) -> dict:
    """Train ``module`` in place; returns the history: {"steps", "final_lr"}.

    ``checkpoint_dir``: write Lightning's ``last.ckpt`` there every ``checkpoint_every`` steps.
    ``resume``: None (start fresh; older checkpoints in ``checkpoint_dir`` are removed),
    ``"auto"`` (``checkpoint_dir/last.ckpt`` when present, else fresh) or a ``last.ckpt`` file
    (new checkpoints then go to its folder unless ``checkpoint_dir`` says otherwise); see
    :func:`resume_checkpoint`. A resumed run ends with the
    weights of an uninterrupted one (same config and seed). Checkpoints are loaded with
    ``weights_only=True``: no pickled code runs; an unreadable one is reported in one line and
    its predecessor (``last-prev.ckpt``) is used instead."""
    if resume is not None and checkpoint_dir is None and str(resume) != "auto":
        checkpoint_dir = Path(resume).parent
    ckpt = resume_checkpoint(resume, checkpoint_dir)
    with warnings.catch_warnings(), quiet_lightning():  # progress=True shows the bar only
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before.*")
        trainer = build_trainer(config, checkpoint_dir, checkpoint_every)
        if checkpoint_dir is not None and ckpt is None:  # a fresh run: no other run's fallback
            for old in (Path(checkpoint_dir) / LAST, previous_path(Path(checkpoint_dir) / LAST)):
                old.unlink(missing_ok=True)
        if checkpoint_dir is not None:  # batch k is batch k of the loader, also after a resume
            loader = ResumableLoader(loader, trainer, seed=config.seed, shuffle=False)
        trainer.fit(module, loader, ckpt_path=ckpt, weights_only=True)
    return {
        "steps": int(trainer.global_step),
        "final_lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
    }
