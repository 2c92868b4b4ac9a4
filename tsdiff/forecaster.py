"""``tsdiff.Forecaster``: fit on a long DataFrame, predict sample paths, save and load.

    >>> f = Forecaster(prediction_length=24, context_length=168, freq="h")
    >>> f.fit(df, target=["ghi", "temp_air"])                  # doctest: +SKIP
    >>> fc = f.predict(df, num_samples=100)                     # doctest: +SKIP
    >>> fc.samples.shape   # [items, samples, horizon, channels]  # doctest: +SKIP

A facade: the configuration is :mod:`tsdiff.config`, training :mod:`tsdiff.train`, sampling
:mod:`tsdiff.sampling`, calibration :mod:`tsdiff.calibration`, the files :mod:`tsdiff.store`.
Training runs on Lightning (CPU here; GPUs via ``accelerator``/``devices``); inference needs no
Trainer. After a first training phase, a softmax temperature for the cell distributions is fitted
on held-out validation windows (the last horizons of every training series, excluded from that
phase) by minimising CRPS: the "calibrated" part of the default sampler; a final phase then
trains on the full history (:mod:`tsdiff.fitting`), all within ``max_time_s``. Settings left
``None`` are decided from the data (:mod:`tsdiff.defaults`). ``calibration="spread"`` fits a
centre-preserving spread factor instead (or ``"both"``; see tsdiff.calibration). Set
``calibrate=False`` to skip.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tsdiff.backtest import backtest
from tsdiff.calibration import calibrate, widen
from tsdiff.conditioning import extend, future_block
from tsdiff.config import CALIBRATIONS, CHANNEL_MODES, ForecasterConfig
from tsdiff.data.frames import Columns, DataError, Series, category_vocab, frame_to_series
from tsdiff.data.windows import collate, make_window, merge_channels, split_channels
from tsdiff.encoding import domain_limits
from tsdiff.features import Calendar
from tsdiff.fitting import Budget, fit_phases
from tsdiff.forecast import Forecast
from tsdiff.model import NumericDenoiser
from tsdiff.pretrained.zero_shot import bind_frame, zero_shot
from tsdiff.rollout_calibration import recalibrate_rollouts
from tsdiff.sampling import SampleStats, sample_paths
from tsdiff.store import Checkpoint, load_checkpoint, save_checkpoint
from tsdiff.support import covariate_support
from tsdiff.train import holdout, is_independent

SAMPLER_SETTINGS = {"steps", "order", "block_length", "schedule", "branch"}  # recalibrate() may set

__all__ = ["CALIBRATIONS", "CHANNEL_MODES", "Forecaster", "ForecasterConfig"]


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
        self.timings: dict[str, float] = {}  # seconds per phase of the last fit (not saved)
        self.categories: dict[str, list[str]] = {}
        self.roles: tuple | None = None  # zero-shot: (target, item_id, timestamp) of any frame

    @classmethod
    def from_pretrained(
        cls,
        prediction_length: int,
        freq: str,
        *,
        path: str | Path | None = None,
        target: str | list[str] | None = None,
        item_id: str = "item_id",
        timestamp: str = "timestamp",
        **settings,
    ) -> Forecaster:
        """Zero-shot: the pretrained base shipped in the package (or the base in folder
        ``path``) as a forecaster of horizon ``prediction_length``, with no fit.

            >>> f = Forecaster.from_pretrained(prediction_length=24, freq="h")
            >>> fc = f.predict(df)   # any long frame: item_id, timestamp, targets  # doctest: +SKIP

        ``predict`` / ``backtest`` read the column roles (``target``: default every column but
        the id and time) and each target's domain from the frame they are given; channels are
        forecast one by one. ``settings``: sampler settings (``steps``, ``order``...). Covariates
        need a fine-tune (``Forecaster(..., init="base").fit(df)``); see tsdiff.pretrained."""
        return zero_shot(cls, prediction_length, freq, path, (target, item_id, timestamp),
                         settings)  # fmt: skip

    @classmethod
    def from_model(
        cls,
        config: ForecasterConfig,
        model: NumericDenoiser,
        columns: Columns,
        categories: dict[str, list[str]] | None = None,
    ) -> Forecaster:
        """A forecaster around a denoiser trained elsewhere (the GluonTS estimator), not yet
        calibrated (:meth:`calibrate`); ``columns`` name its targets and covariates."""
        f = cls(config)
        f.model = model.to(f.device).eval()
        f.columns = columns
        f.categories = dict(categories or {})
        return f

    @property
    def device(self) -> torch.device:
        """Where inference runs: CUDA when training asked for a GPU and one is present."""
        wants_gpu = self.config.accelerator in ("gpu", "cuda", "auto")
        return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items()}

    def _series(self, df: pd.DataFrame, min_length: int = 1) -> list[Series]:
        if self.roles is not None:  # zero-shot: column roles and domain come from each frame
            bind_frame(self, df, *self.roles)
        return frame_to_series(
            df, self.columns, self.config.freq, min_length=min_length,
            categories=self.categories, calendar=self.calendar,
        )  # fmt: skip

    @property
    def calendar(self) -> Calendar | None:
        """The calendar inputs fixed at fit time (saved with the model; tsdiff.features)."""
        if self.model is None:
            return None
        return Calendar.saved(self.model.cfg.time_features, self.config.freq, self.config.holidays)

    @property
    def lags(self) -> tuple[int, ...]:
        """The seasonal lags (steps) the model reads (tsdiff.features.seasonal_lags)."""
        return tuple(self.model.cfg.lags) if self.model is not None else ()

    def _columns(self, df: pd.DataFrame, target, item_id: str, timestamp: str) -> Columns:
        """Column roles; ``target=None``: every column that is not an id, time or covariate."""
        c = self.config
        if target is None:
            reserved = {item_id, timestamp, *c.past_covariates, *c.future_covariates,
                        *c.static_covariates, *c.static_categorical}  # fmt: skip
            target = [col for col in df.columns if col not in reserved]
        return Columns(
            targets=[target] if isinstance(target, str) else list(target),
            item_id=item_id,
            timestamp=timestamp,
            past_covariates=list(c.past_covariates),
            future_covariates=list(c.future_covariates),
            static_real=list(c.static_covariates),
            static_cat=list(c.static_categorical),
        )

    @property
    def independent(self) -> bool:
        """True when channels are forecast independently (``channels="independent"``, C > 1)."""
        return is_independent(self.config, len(self.columns.targets))

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        df: pd.DataFrame,
        *,
        target: str | list[str] | None = None,
        item_id: str = "item_id",
        timestamp: str = "timestamp",
        checkpoint_dir: str | Path | None = None,
        resume: str | Path | None = None,
        checkpoint_every: int = 100,
        init: str | None = None,
    ) -> Forecaster:
        """Train on every window of ``df`` (a long frame; see tsdiff.data.frames).

        ``init``: ``"base"`` (or a base folder) starts from the pretrained base, as the
        config's ``init`` (which it sets; tsdiff.pretrained): fine-tuning, ``finetune`` says how.

        ``checkpoint_dir``: write Lightning's ``last.ckpt`` there every ``checkpoint_every``
        steps (atomically; the one before kept as ``last-prev.ckpt``). ``resume``: ``"auto"``
        continues from ``checkpoint_dir/last.ckpt`` when there is one (else starts fresh), a
        file path continues from that checkpoint; the result equals an uninterrupted fit of the
        same data, config and seed (calibration included). Default: no files, a fresh start.

        Settings left ``None`` are decided from the data first (:mod:`tsdiff.defaults`; the
        decisions in ``history["defaults"]`` and in the config); training, calibration and the
        final phase on the full history run within ``max_time_s`` (:mod:`tsdiff.fitting`)."""
        budget = Budget(self.config.max_time_s, time.monotonic())
        if init is not None:
            self.config = dataclasses.replace(self.config, init=init)
        self.roles = None  # a fit binds the columns once, from its training frame
        self.columns = self._columns(df, target, item_id, timestamp)
        self.categories = category_vocab(df, self.columns.static_cat)
        self.model = None  # a refit chooses its calendar and lags afresh from this history
        series = self._series(df, min_length=self.config.prediction_length + 1)
        fit_phases(
            self, series, budget, checkpoint_dir=checkpoint_dir, resume=resume,
            checkpoint_every=checkpoint_every,
        )  # fmt: skip
        self.history["covariate_support"] = covariate_support(
            series, self.columns.future_covariates
        )  # what rollouts are checked against (tsdiff.support)
        return self

    def recalibrate(self, df: pd.DataFrame, calibration: str | None = None, **sampler):
        """Refit the calibration (``calibration``: temperature, spread or both; default the
        configured one) on the validation windows that :meth:`fit` held out of ``df``, the
        training frame (e.g. a checkpoint calibrated by temperature, refitted for rollouts).
        ``sampler``: new sampler settings (``steps``, ``order``, ``block_length``, ``schedule``,
        ``branch``) that become the configured ones before the refit: a temperature belongs to
        the sampler it was fitted with (fewer steps draw more cells from their marginals)."""
        self._check_fitted()
        if unknown := sorted(set(sampler) - SAMPLER_SETTINGS):
            raise TypeError(
                f"recalibrate: unknown sampler setting(s) {unknown}; "
                f"expected some of {sorted(SAMPLER_SETTINGS)}"
            )
        if calibration is not None:
            sampler["calibration"] = calibration
        self.config = dataclasses.replace(self.config, **sampler)
        series = self._series(df, min_length=self.config.prediction_length + 1)
        _, val = holdout(series, self.config, lags=self.lags)
        if not val:
            raise DataError(
                "recalibrate: no series in df is long enough to hold out validation windows "
                f"(its last horizons of {self.config.prediction_length} steps, as fit() does)"
            )  # fmt: skip
        self.config = dataclasses.replace(self.config, calibrate=True)
        self.calibrate(val)
        return self

    recalibrate_rollouts = recalibrate_rollouts  # windows where actions were held (its module)

    def calibrate(
        self, windows: list[dict], grid=None, deadline: float | None = None
    ) -> Forecaster:
        """Fit ``temperature`` and/or ``spread`` (``config.calibration``) on held-out windows
        (:func:`tsdiff.data.windows.make_window` dicts; see :func:`tsdiff.calibration.calibrate`,
        also for ``deadline``, a ``time.monotonic()`` value where it stops)."""
        self._check_fitted()
        for key in ("calibration", "spread_calibration"):  # no stale scores of an earlier fit
            self.history.pop(key, None)
        batch = self._to_device(collate(windows))
        # the model's input batch, built once, not per grid value (``batch`` is it when joint)
        inputs = self.model_batch(windows) if self.independent else batch

        def paths(temp: float, n: int) -> torch.Tensor:
            g = torch.Generator(device=self.device).manual_seed(self.config.seed)
            opts = self.sampler_options(temperature=temp)
            return self.sample_batch(inputs, n, generator=g, **opts)[0]

        self.temperature, self.spread, scores = calibrate(
            self.config.calibration, batch, paths, mode=self.model.cfg.mode, grid=grid,
            deadline=deadline, bounds=self.bounds,
        )  # fmt: skip
        self.history.update(scores)
        return self

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
            ext = extend(s, fcov, c.freq, self.calendar)
            windows.append(make_window(ext, len(s), c.context_length, H, c.freq, self.lags))
            starts.append(ext.index[len(s)])
        samples, stats = self.sample(windows, num_samples, seed, **sampler)
        return Forecast(samples, items, starts, c.freq, self.columns.targets, stats.nfe)

    def sample(self, windows: list[dict], num_samples: int, seed: int = 0, **sampler):
        """Paths [N, S, H, C] (numpy) of window dicts and the sampler's stats, drawn with
        ``seed``, the fitted spread (or ``spread=``) applied; ``sampler``: overrides of
        :meth:`sampler_options`."""
        self._check_fitted()
        if num_samples < 1:
            raise ValueError(f"num_samples: expected a positive integer, got {num_samples}")
        spread = sampler.pop("spread", self.spread)
        g = torch.Generator(device=self.device).manual_seed(seed)
        opts = self.sampler_options(**sampler)
        samples, stats = self.sample_windows(windows, num_samples, generator=g, **opts)
        return widen(samples.cpu().numpy(), spread, bounds=self.bounds), stats

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bound [C] of every target channel in data units (-inf / inf: none):
        the model's resolved domain, which every step that moves paths keeps them in."""
        return domain_limits(self.model.cfg.domain, len(self.columns.targets))

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
        :func:`tsdiff.sampling.sample_paths`); univariate paths are merged back per window."""
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
        updated with ``overrides``: the keyword arguments of :func:`tsdiff.sampling.sample_paths`.
        (The fitted ``spread`` acts on finished paths, after the sampler; predict, backtest and
        rollout apply it and take ``spread=`` as an override.)"""
        c = self.config
        opts = {
            "order": c.order,
            "steps": c.steps,
            "block_length": c.block_length,
            "schedule": c.schedule,
            "branch": c.branch,
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

    backtest = backtest  # rolling-origin windows of a frame (its module)

    # ------------------------------------------------------------------ persistence
    def save(
        self, path: str | Path, files: dict[str, str] | None = None, *, lock: bool = True
    ) -> Path:
        """Write config.json, model.safetensors and ``files`` (name -> text) into directory
        ``path``, all or nothing, holding the folder's lock (``lock=False``: the caller holds
        it); a second writer of ``path`` gets :class:`lm_core.checkpoint.OutputLockedError`
        (:func:`tsdiff.store.save_checkpoint`)."""
        self._check_fitted()
        ck = Checkpoint(
            config=self.config, model=self.model, columns=self.columns,
            temperature=self.temperature, spread=self.spread, history=self.history,
            categories=self.categories,
        )  # fmt: skip
        return save_checkpoint(path, ck, files, lock=lock)

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """Load a forecaster saved by :meth:`save` (:func:`tsdiff.store.load_checkpoint`)."""
        ck = load_checkpoint(path)
        f = cls.from_model(ck.config, ck.model, ck.columns, ck.categories)
        f.temperature, f.spread, f.history = ck.temperature, ck.spread, ck.history
        return f
