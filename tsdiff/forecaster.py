"""``tsdiff.Forecaster``: fit on a long DataFrame, predict sample paths, save and load.

    >>> f = Forecaster(prediction_length=24, context_length=168, freq="h")
    >>> f.fit(df, target=["ghi", "temp_air"])                  # doctest: +SKIP
    >>> fc = f.predict(df, num_samples=100)                     # doctest: +SKIP
    >>> fc.samples.shape   # [items, samples, horizon, channels]  # doctest: +SKIP

Training runs on Lightning (CPU here; GPUs via ``accelerator``/``devices``); inference needs no
Trainer. After training, a softmax temperature for the cell distributions is fitted on held-out
validation windows (the last horizon of every training series, excluded from training) by
minimising CRPS: the "calibrated" part of the default sampler. ``calibration="spread"`` fits a
centre-preserving spread factor instead (or ``"both"``; see tsdiff.calibration). Set
``calibrate=False`` to skip.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from lm_core.checkpoint import atomic_write_dir
from tsdiff.calibration import fit_spread, grid_search, mean_fair_crps, widen
from tsdiff.conditioning import extend, future_block
from tsdiff.data.frames import Columns, DataError, Series, category_vocab, frame_to_series
from tsdiff.data.windows import (
    TrainWindows,
    collate,
    make_window,
    merge_channels,
    split_channels,
    split_series,
)
from tsdiff.diffusion import ORDERS, SampleStats, sample_paths
from tsdiff.encoding import standardize, target_scale
from tsdiff.features import feature_names, parse_freq
from tsdiff.forecast import Forecast
from tsdiff.lightning import TSDiffModule
from tsdiff.model import NumericDenoiser, TSModelConfig

CALIBRATIONS = ("temperature", "spread", "both")
CHANNEL_MODES = ("joint", "independent")
SAMPLER_SETTINGS = {"steps", "order", "block_length"}  # what recalibrate() may change


@dataclass
class ForecasterConfig:
    """Everything that defines a forecaster run (mirrored by configs/ts/*.yaml)."""

    prediction_length: int = 24
    """Horizon H in steps."""
    context_length: int = 168
    """Context L in steps."""
    freq: str = "h"
    """pandas frequency string of the series (e.g. h, 30min, D, MS)."""
    patch_size: int = 8
    """Context steps per context token."""
    n_bins: int = 256
    """Value bins of the masked mode."""
    mode: str = "masked"
    """masked: value bins and masked diffusion; flow: continuous values and flow matching."""
    channels: str = "joint"
    """joint: an item's target channels are cells of one sequence and attend to each other, so
    the joint over channels is modelled; independent: every channel is forecast as its own
    univariate series by one shared model that knows the channel by a learned embedding
    (channel independence, as PatchTST and GluonTS's DeepAR on multivariate data): C times more,
    C times shorter training sequences, which can pay on a few long series, but paths are
    independent across channels given each channel's own context."""
    scale_features: bool = False
    """Give the denoiser each channel's context level and scale (asinh loc, log scale), so that
    effects of covariates in absolute units (actions, say) can be learned; see TSModelConfig."""
    covariate_scaling: str = "context"
    """context: covariates standardised per window by their context statistics; global: by their
    training-set mean and std (recommended for actions: a constant plan keeps its meaning)."""
    d_model: int = 128
    """Width of the Transformer denoiser."""
    n_layers: int = 3
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads."""
    dropout: float = 0.0
    """Residual dropout in the denoiser during training (a regulariser for small data)."""
    batch_size: int = 64
    """Training windows per optimiser step."""
    num_workers: int = 0
    """DataLoader worker processes building training windows (0: in the main process)."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, warmup-stable-decay)."""
    max_steps: int = 2000
    """Optimiser steps (the WSD schedule's length)."""
    max_time_s: float | None = None
    """Stop training after this many seconds, or max_steps, whichever comes first (None: run
    max_steps); the learning-rate decay follows whichever budget is nearer its end."""
    seed: int = 0
    """Seed of training windows, initialisation and masking."""
    order: str = "entropy"
    """Commitment order: entropy (default), margin, random, or prob (mode-seeking; comparison only)."""
    steps: int | None = None
    """Sampler steps = NFE per path; None = ceil(prediction_length / 4). The calibration is
    fitted with these steps (``recalibrate(df, steps=...)`` refits it for others)."""
    block_length: int | None = None
    """Horizon steps per semi-autoregressive block; None = one block."""
    calibrate: bool = True
    """Calibrate on held-out validation windows after training (what: see ``calibration``)."""
    calibration: str = "temperature"
    """What calibrate fits, by validation CRPS: temperature (the sampler's softmax temperature /
    flow noise scale), spread (a centre-preserving factor on the paths' spread around their mean:
    keeps means and hence plan effects; recommended for scenario rollouts), or both (temperature,
    then spread)."""
    validation_per_series: int = 7
    """At most this many held-out validation windows per series (its last horizons, cut from
    training; about 32 windows are held out in all): a data set of one long series gets this
    many, so raise it where a few horizons are too small a sample for the calibration."""
    accelerator: str = "cpu"
    """Lightning accelerator for training (cpu, gpu, auto); inference follows it."""
    devices: int | str = 1
    """Lightning devices (e.g. 2 GPUs with DDP)."""
    precision: str = "32-true"
    """Lightning training precision: 32-true, or bf16-mixed (GPUs; CPUs with AVX512-BF16)."""
    inference_precision: str | None = None
    """Sampling precision, 32 or bf16; None: bf16 when ``precision`` is a bf16 one, else 32."""
    progress: bool = True
    """Show progress bars."""
    past_covariates: list[str] = field(default_factory=list)
    """Columns seen in the history only (scaled from the context)."""
    future_covariates: list[str] = field(default_factory=list)
    """Columns known over the horizon too (calendar, plans, actions); predict() needs them."""
    static_covariates: list[str] = field(default_factory=list)
    """Real-valued per-item columns (constant over time)."""
    static_categorical: list[str] = field(default_factory=list)
    """Categorical per-item columns; a category unseen in training is an error at predict time."""

    def __post_init__(self) -> None:
        for name in (
            "prediction_length",
            "context_length",
            "batch_size",
            "max_steps",
            "patch_size",
            "validation_per_series",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order: expected one of {ORDERS}, got {self.order!r}")
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")
        if self.channels not in CHANNEL_MODES:
            raise ValueError(f"channels: expected one of {CHANNEL_MODES}, got {self.channels!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(
                f"calibration: expected one of {CALIBRATIONS}, got {self.calibration!r}"
            )
        if self.covariate_scaling not in ("context", "global"):
            raise ValueError(
                f"covariate_scaling: expected 'context' or 'global', got {self.covariate_scaling!r}"
            )
        if self.inference_precision not in (None, "32", "bf16"):
            raise ValueError(
                f"inference_precision: expected None, '32' or 'bf16', "
                f"got {self.inference_precision!r}"
            )
        parse_freq(self.freq)


def _global_stats(arrays: list[np.ndarray]) -> list[list[float]]:
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


class Forecaster:
    """Probabilistic multivariate forecaster on lm_core's block denoiser (masked mode)."""

    def __init__(self, config: ForecasterConfig | None = None, **kwargs) -> None:
        known = {f.name for f in fields(ForecasterConfig)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"Forecaster: unknown argument(s) {unknown}; known: {sorted(known)}")
        self.config = config or ForecasterConfig(**kwargs)
        self.model: NumericDenoiser | None = None
        self.columns: Columns | None = None
        self.temperature = 1.0
        self.spread = 1.0
        self.history: dict = {}
        self.categories: dict[str, list[str]] = {}

    @property
    def device(self) -> torch.device:
        """Where inference runs: CUDA when training asked for a GPU and one is present."""
        wants_gpu = self.config.accelerator in ("gpu", "cuda", "auto")
        return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items()}

    # ------------------------------------------------------------------ data
    def _series(self, df: pd.DataFrame, min_length: int = 1) -> list[Series]:
        return frame_to_series(
            df, self.columns, self.config.freq, min_length=min_length, categories=self.categories
        )

    def _model_config(self, series: list[Series]) -> TSModelConfig:
        c = self.config
        s = series[0]
        glob = c.covariate_scaling == "global"  # training statistics only where they are used
        cards = [len(self.categories[col]) for col in self.columns.static_cat]
        if self.independent:  # one univariate channel per sequence, its index a category
            cards.append(s.target.shape[1])
        return TSModelConfig(
            context_length=c.context_length,
            prediction_length=c.prediction_length,
            n_channels=1 if self.independent else s.target.shape[1],
            patch_size=min(c.patch_size, c.context_length),
            n_bins=c.n_bins,
            mode=c.mode,
            scale_features=c.scale_features,
            covariate_scaling=c.covariate_scaling,
            past_cov_stats=_global_stats([x.past_cov for x in series]) if glob else [],
            future_cov_stats=_global_stats([x.future_cov for x in series]) if glob else [],
            d_model=c.d_model,
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            dropout=c.dropout,
            n_time_features=len(feature_names(c.freq)),
            n_past_covariates=s.past_cov.shape[1],
            n_future_covariates=s.future_cov.shape[1],
            n_static_real=len(s.static_real),
            static_cardinalities=cards,
        )

    @property
    def independent(self) -> bool:
        """True when channels are forecast independently (``channels="independent"``, C > 1)."""
        return self.config.channels == "independent" and len(self.columns.targets) > 1

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        df: pd.DataFrame,
        *,
        target: str | list[str] | None = None,
        item_id: str = "item_id",
        timestamp: str = "timestamp",
    ) -> Forecaster:
        """Train on every window of ``df`` (a long frame; see tsdiff.data.frames)."""
        c = self.config
        if target is None:
            reserved = {
                item_id,
                timestamp,
                *c.past_covariates,
                *c.future_covariates,
                *c.static_covariates,
                *c.static_categorical,
            }
            target = [col for col in df.columns if col not in reserved]
        targets = [target] if isinstance(target, str) else list(target)
        self.columns = Columns(
            targets=targets,
            item_id=item_id,
            timestamp=timestamp,
            past_covariates=list(c.past_covariates),
            future_covariates=list(c.future_covariates),
            static_real=list(c.static_covariates),
            static_cat=list(c.static_categorical),
        )
        self.categories = category_vocab(df, self.columns.static_cat)
        series = self._series(df, min_length=c.prediction_length + 1)
        H = c.prediction_length
        L.seed_everything(c.seed, workers=True, verbose=False)
        train_series, val = self._holdout(series) if c.calibrate else (series, [])
        mcfg = self._model_config(series)
        module = TSDiffModule(
            mcfg.to_dict(), lr=c.lr, max_steps=c.max_steps, warmup_steps=min(100, c.max_steps // 10)
        )
        data = TrainWindows(
            split_series(train_series) if self.independent else train_series,
            c.context_length,
            H,
            c.freq,
            n_windows=c.max_steps * c.batch_size,
            seed=c.seed,
        )
        loader = DataLoader(
            data,
            batch_size=c.batch_size,
            collate_fn=collate,
            shuffle=False,
            num_workers=c.num_workers,
            persistent_workers=c.num_workers > 0,
        )
        trainer = L.Trainer(
            max_steps=c.max_steps,
            max_time={"seconds": c.max_time_s} if c.max_time_s else None,
            accelerator=c.accelerator,
            devices=c.devices,
            precision=c.precision,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=c.progress,
            enable_model_summary=False,
            gradient_clip_val=1.0,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            trainer.fit(module, loader)
        self.model = module.model.to(self.device).eval()
        self.history = {
            "steps": int(trainer.global_step),
            "final_lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
        }
        self.temperature, self.spread = 1.0, 1.0
        if val:
            self._calibrate(val)
        return self

    def recalibrate(
        self, df: pd.DataFrame, calibration: str | None = None, **sampler
    ) -> Forecaster:
        """Refit the calibration (``calibration``: temperature, spread or both; default the
        configured one) on the validation windows that :meth:`fit` held out of ``df``, the
        training frame. E.g. a checkpoint calibrated by temperature, refitted for rollouts.

        ``sampler``: new sampler settings (``steps``, ``order``, ``block_length``) that become
        the configured ones before the refit. A temperature belongs to the sampler it was fitted
        with: with fewer steps more cells are drawn from their marginals given the context alone,
        which need another temperature than cells drawn given earlier draws (e.g. one step:
        every cell is a marginal draw)."""
        self._check_fitted()
        if unknown := sorted(set(sampler) - SAMPLER_SETTINGS):
            raise TypeError(
                f"recalibrate: unknown sampler setting(s) {unknown}; "
                f"expected some of {sorted(SAMPLER_SETTINGS)}"
            )
        if calibration is not None:
            sampler["calibration"] = calibration
        self.config = dataclasses.replace(self.config, **sampler)
        _, val = self._holdout(self._series(df, min_length=self.config.prediction_length + 1))
        if not val:
            raise DataError(
                "recalibrate: no series in df is long enough to hold out validation windows "
                f"(its last horizons of {self.config.prediction_length} steps, as fit() does)"
            )
        self.config = dataclasses.replace(self.config, calibrate=True)
        self._calibrate(val)
        return self

    @staticmethod
    def _truncate(s: Series, n: int) -> Series:
        """The first n steps of a series."""
        return dataclasses.replace(
            s, index=s.index[:n], target=s.target[:n], time_feat=s.time_feat[:n],
            past_cov=s.past_cov[:n], future_cov=s.future_cov[:n],
        )  # fmt: skip

    def _holdout(self, series: list[Series], target_windows: int = 32):
        """Carve validation windows from the end of each series (training stops before them).

        Each series long enough gives its last k horizons (k = ceil(32 / items), at most
        ``config.validation_per_series``) as validation windows; series too short to spare them
        stay whole in training.
        """
        H, Lc = self.config.prediction_length, self.config.context_length
        k = min(self.config.validation_per_series, max(1, -(-target_windows // len(series))))
        train, val = [], []
        for s in series:
            if len(s) <= (k + 1) * H:
                train.append(s)
                continue
            train.append(self._truncate(s, len(s) - k * H))
            val += [
                make_window(s, len(s) - j * H, Lc, H, self.config.freq) for j in range(1, k + 1)
            ]
        rng = np.random.default_rng(self.config.seed)
        if len(val) > 4 * target_windows:
            val = [val[i] for i in rng.choice(len(val), 4 * target_windows, replace=False)]
        return train, val

    def _calibrate(
        self, val: list[dict], grid=None, n_samples: int = 16, spread_samples: int = 64
    ) -> None:
        """Fit ``self.temperature`` and/or ``self.spread`` on held-out windows (config.calibration).

        CRPS is taken on context-scaled values so every channel counts alike, with the unbiased
        ("fair") ensemble estimator so the small ensemble does not favour sharp forecasts.
        Temperature: every grid value sees the same random numbers; the grid holds softmax
        temperatures (masked mode) or initial-noise scales (flow mode, whose few-step ODE tends
        to be too sharp). Spread: one set of ``spread_samples`` paths at the fitted temperature is
        widened or narrowed around its mean (:func:`tsdiff.calibration.fit_spread`).
        """
        what = self.config.calibration
        for key in ("calibration", "spread_calibration"):  # no stale scores of an earlier fit
            self.history.pop(key, None)
        batch = self._to_device(collate(val))
        loc, scale = target_scale(batch["ctx"], batch["ctx_obs"])  # float64; 0: degenerate
        y = standardize(batch["fut"], loc, scale).cpu().numpy()
        obs = (batch["fut_obs"] & (scale > 0)).cpu().numpy()  # degenerate paths are exact
        # the model's input batch, built once, not per grid value (``batch`` is it when joint)
        inputs = self.model_batch(val) if self.independent else batch

        def paths(temp: float, n: int) -> np.ndarray:
            g = torch.Generator(device=self.device).manual_seed(self.config.seed)
            opts = self.sampler_options(temperature=temp)
            s, _ = self.sample_batch(inputs, n, generator=g, **opts)
            return standardize(s, loc[:, None], scale[:, None]).cpu().numpy()

        self.temperature, self.spread = 1.0, 1.0
        if what in ("temperature", "both"):
            if grid is None:
                flow = self.model.cfg.mode == "flow"
                grid = (
                    (0.8, 1.0, 1.25, 1.6, 2.0, 2.5, 3.0, 4.0)
                    if flow
                    else (0.5, 0.6, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5)
                )

            def score(temp: float) -> float:
                return mean_fair_crps(paths(temp, n_samples), y, obs)

            self.temperature, scores = grid_search(score, grid)
            self.history["calibration"] = {str(t): round(v, 5) for t, v in scores.items()}
        if what in ("spread", "both"):
            self.spread, scores = fit_spread(paths(self.temperature, spread_samples), y, obs)
            self.history["spread_calibration"] = {str(k): round(v, 5) for k, v in scores.items()}

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if self.model is None:
            raise RuntimeError("this Forecaster is not fitted: call fit() or Forecaster.load()")

    def predict(
        self,
        df: pd.DataFrame,
        num_samples: int = 100,
        *,
        future: pd.DataFrame | None = None,
        seed: int = 0,
        **sampler,
    ) -> Forecast:
        """Sample paths for the H steps after the end of every item in ``df``.

        ``future``: a long frame with the known-future covariates for those H steps (required
        when the model was trained with ``future_covariates``; see tsdiff.conditioning).
        """
        self._check_fitted()
        c = self.config
        H = c.prediction_length
        windows, starts, items = [], [], []
        for s in self._series(df):
            items.append(s.item_id)
            fcov = future_block(s, future, self.columns, H, c.freq)
            ext = extend(s, fcov, c.freq)
            windows.append(make_window(ext, len(s), c.context_length, H, c.freq))
            starts.append(ext.index[len(s)])
        samples, stats = self._sample(windows, num_samples, seed, **sampler)
        return Forecast(samples, items, starts, c.freq, self.columns.targets, stats.nfe)

    def _sample(self, windows: list[dict], num_samples: int, seed: int, **sampler):
        """Paths [N, S, H, C] of the windows, with the fitted spread (or ``spread=``) applied."""
        if num_samples < 1:
            raise ValueError(f"num_samples: expected a positive integer, got {num_samples}")
        spread = sampler.pop("spread", self.spread)
        g = torch.Generator(device=self.device).manual_seed(seed)
        opts = self.sampler_options(**sampler)
        samples, stats = self.sample_windows(windows, num_samples, generator=g, **opts)
        return widen(samples.cpu().numpy(), spread), stats

    def model_batch(self, windows: list[dict]) -> dict[str, torch.Tensor]:
        """Window dicts (tsdiff.data.windows.make_window) as the model's input batch on
        ``self.device``: channel-independent models get the C univariate windows of every
        window (window-major, [N * C, ..., 1])."""
        return self._to_device(collate(split_channels(windows) if self.independent else windows))

    def sample_batch(
        self, batch: dict, num_samples: int, *, generator=None, **opts
    ) -> tuple[torch.Tensor, SampleStats]:
        """Raw sampler paths [N, S, H, C] (on ``self.device``, no spread applied) of a
        :meth:`model_batch`, with sampler options ``opts`` (the keyword arguments of
        :func:`tsdiff.diffusion.sample_paths`); univariate paths are merged back per window."""
        out, stats = sample_paths(self.model, batch, num_samples, generator=generator, **opts)
        return (merge_channels(out, len(self.columns.targets)) if self.independent else out), stats

    def sample_windows(
        self, windows: list[dict], num_samples: int, *, generator=None, **opts
    ) -> tuple[torch.Tensor, SampleStats]:
        """:meth:`sample_batch` of :meth:`model_batch` (windows): paths [N, S, H, C]."""
        return self.sample_batch(
            self.model_batch(windows), num_samples, generator=generator, **opts
        )

    def sampler_options(self, **overrides) -> dict:
        """The configured sampler settings (order, steps, block_length, fitted temperature),
        updated with ``overrides``: the keyword arguments of :func:`tsdiff.diffusion.sample_paths`.
        (The fitted ``spread`` acts on finished paths, after the sampler; predict, backtest and
        rollout apply it and take ``spread=`` as an override.)"""
        c = self.config
        opts = {
            "order": c.order,
            "steps": c.steps,
            "block_length": c.block_length,
            "temperature": self.temperature,
            "precision": self.inference_precision,
        }
        return {**opts, **overrides}

    @property
    def inference_precision(self) -> str:
        """``32`` or ``bf16``: the configured one, else following the training precision."""
        p = self.config.inference_precision
        if p is None:
            return "bf16" if str(self.config.precision).startswith("bf16") else "32"
        return p

    def backtest(
        self,
        df: pd.DataFrame,
        windows: int = 1,
        num_samples: int = 100,
        *,
        origins: list | None = None,
        seed: int = 0,
        **sampler,
    ) -> dict:
        """Rolling-origin backtest.

        The test windows are either the last ``windows`` non-overlapping horizons of every item,
        or, with ``origins`` (timestamps of the first forecast step, shared by all items), one
        window per item and origin (windows may overlap, e.g. daily origins of a 48-step horizon).
        Only data before each origin is seen; the model should have been fitted on data before the
        first origin.

        Returns {"samples": [N, S, H, C], "y": [N, H, C], "observed": bool [N, H, C],
        "insample": list of [T_i, C] arrays (history before each origin), "items", "origins",
        "nfe" (per path), "seconds" (sampling wall-clock)}; N = items x windows, item-major.
        """
        self._check_fitted()
        H, Lc = self.config.prediction_length, self.config.context_length
        ws, insample, items, starts = [], [], [], []
        for s in self._series(df):
            if origins is None:
                ends = [len(s) - k * H for k in range(windows, 0, -1)]
            else:
                ends = [int(s.index.get_indexer([pd.Timestamp(o)])[0]) for o in origins]
            for end in ends:
                if end < 1 or end + H > len(s):
                    raise DataError(
                        f"item {s.item_id!r}: a backtest window of {H} steps at position {end} "
                        f"does not fit its {len(s)} steps (or its origin is not in the data)"
                    )
                ws.append(make_window(s, end, Lc, H, self.config.freq))
                insample.append(s.target[:end])
                items.append(s.item_id)
                starts.append(s.index[end])
        samples, stats = self._sample(ws, num_samples, seed, **sampler)
        batch = collate(ws)
        return {
            "samples": samples,
            "y": batch["fut"].numpy(),
            "observed": batch["fut_obs"].numpy(),
            "insample": insample,
            "items": items,
            "origins": starts,
            "nfe": stats.nfe,
            "seconds": stats.seconds,
        }

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write config.json and model.safetensors into directory ``path`` (atomically)."""
        self._check_fitted()
        meta = {
            "format": "tsdiff",
            "forecaster": asdict(self.config),
            "model": self.model.cfg.to_dict(),
            "columns": asdict(self.columns),
            "temperature": self.temperature,
            "spread": self.spread,
            "history": self.history,
            "categories": self.categories,
        }
        state = {k: v.contiguous() for k, v in self.model.state_dict().items()}

        def write(tmp: Path) -> None:
            save_file(state, str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text(json.dumps(meta, indent=2, default=str))

        return atomic_write_dir(Path(path), write)

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """Load a forecaster saved by :meth:`save` (safetensors: no code is executed)."""
        path = Path(path)
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"{path}: not a tsdiff checkpoint (expected config.json and model.safetensors)"
            )
        try:
            meta = json.loads((path / "config.json").read_text())
            if meta.get("format") != "tsdiff":
                raise ValueError(f"format {meta.get('format')!r}")
            f = cls(ForecasterConfig(**meta["forecaster"]))
            f.columns = Columns(**meta["columns"])
            f.model = NumericDenoiser(TSModelConfig(**meta["model"]))
            f.model.load_state_dict(load_file(str(path / "model.safetensors")))
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise ValueError(f"{path}: corrupt tsdiff checkpoint ({e})") from e
        f.model.to(f.device).eval()
        f.temperature = float(meta.get("temperature", 1.0))
        f.spread = float(meta.get("spread", 1.0))
        f.history = meta.get("history", {})
        f.categories = meta.get("categories", {})
        return f
