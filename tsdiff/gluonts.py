"""GluonTS adapters: ``TSDiffEstimator`` (a ``PyTorchLightningEstimator``) and ``TSDiffPredictor``.

    >>> est = TSDiffEstimator(freq="h", prediction_length=24, context_length=168, max_steps=500)
    >>> predictor = est.train(train_ds, validation_data=val_ds)        # doctest: +SKIP
    >>> forecasts = list(predictor.predict(test_ds))                    # SampleForecast each

Input entries follow GluonTS conventions:

- ``target``: ``[T]`` (univariate, ``target_dim=1``) or ``[C, T]`` (multivariate, ``target_dim=C``,
  e.g. a ``ListDataset(..., one_dim_target=False)``); NaN = unobserved (never filled with zeros).
- ``feat_dynamic_real``: ``[K, T]`` at training, ``[K, T + H]`` at prediction -> known-future
  covariates (``num_feat_dynamic_real=K``).
- ``past_feat_dynamic_real``: ``[K, >= T]`` -> past-only covariates.
- ``feat_static_real``: ``[K]`` -> static real covariates.
- ``feat_static_cat``: ``[K]`` integer codes -> static categorical covariates, one embedding
  table per field (``num_feat_static_cat=K``, ``cardinality=[n_1, ..., n_K]``, codes in
  ``0 .. n_k - 1``; a code outside that range is a DataError naming the item). With
  ``num_feat_static_cat=0`` (the default) the field is ignored, as GluonTS models do.

Windowing reuses :mod:`tsdiff.data.windows` (entries are converted to
:class:`~tsdiff.data.frames.Series`), so training and forecasting see exactly the windows of
:class:`tsdiff.Forecaster`. Forecasts are ``SampleForecast`` with samples ``[S, H]`` (univariate)
or ``[S, H, C]`` (multivariate), ``start_date`` the period after the last target step.

If ``validation_data`` is given, its last horizon per series gives the validation loss (the best
weights by ``val_loss`` are kept, as in every GluonTS torch estimator) and the sampling
temperature (or the spread factor, ``calibration="spread"``) is calibrated on those windows
(``calibrate=True``); without it both are 1.

A predictor serializes to a directory: ``gluonts-config.json`` and ``predictor.json`` (plain JSON)
and a :meth:`tsdiff.Forecaster.save` checkpoint under ``tsdiff/`` (safetensors + JSON; no pickle),
which ``tsdiff forecast --ckpt DIR`` also reads.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from gluonts.core.component import validated
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor
from gluonts.torch.model.estimator import PyTorchLightningEstimator
from gluonts.transform import Identity, Transformation
from torch.utils.data import DataLoader

from tsdiff.data.frames import MAX_ABS, Columns, DataError, Series
from tsdiff.data.windows import TrainWindows, collate, make_window
from tsdiff.features import feature_names, parse_freq, time_features
from tsdiff.forecaster import Forecaster, ForecasterConfig
from tsdiff.lightning import TSDiffModule
from tsdiff.model import TSModelConfig


def _matrix(entry: dict, key: str, rows: int, min_len: int, item: str) -> np.ndarray:
    """``entry[key]`` [rows, >= min_len] -> float32 [min_len, rows] (time-major); zeros if rows = 0."""
    if rows == 0:
        return np.zeros((min_len, 0), np.float32)
    if key not in entry or entry[key] is None:
        raise DataError(f"item {item!r}: field {key!r} missing ({rows} rows expected)")
    try:
        a = np.asarray(entry[key], dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"item {item!r}: field {key!r} is not numeric ({e})") from None
    a = a.reshape(1, -1) if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[0] != rows or a.shape[1] < min_len:
        raise DataError(
            f"item {item!r}: field {key!r} has shape {a.shape}, expected [{rows}, >= {min_len}]"
        )
    if np.isinf(a).any() or (np.abs(np.nan_to_num(a)) > MAX_ABS).any():
        raise DataError(
            f"item {item!r}: field {key!r} has infinite values or |values| > {MAX_ABS:g}"
        )
    return a[:, :min_len].T.copy()


def entry_to_series(
    entry: dict,
    freq: str,
    *,
    target_dim: int = 1,
    num_feat_dynamic_real: int = 0,
    num_past_feat_dynamic_real: int = 0,
    num_feat_static_real: int = 0,
    num_feat_static_cat: int = 0,
    cardinality: list[int] | tuple[int, ...] = (),
    horizon: int = 0,
    default_id: str = "0",
) -> Series:
    """One GluonTS entry -> :class:`Series`; ``horizon > 0`` also reads future covariates / calendar.

    Raises DataError (naming the item and field) for wrong shapes, non-numeric or infinite values,
    an empty or all-NaN target.
    """
    item = str(entry.get("item_id", default_id))
    try:
        target = np.asarray(entry["target"], dtype=np.float64)  # see encoding.target_scale
    except KeyError:
        raise DataError(f"item {item!r}: entry has no 'target'") from None
    except (TypeError, ValueError) as e:
        raise DataError(f"item {item!r}: target is not numeric ({e})") from None
    if target.ndim == 1:
        target = target[None]
    if target.ndim != 2 or target.shape[0] != target_dim or target.shape[1] == 0:
        raise DataError(
            f"item {item!r}: target has shape {np.shape(entry['target'])}, expected "
            f"{'[T]' if target_dim == 1 else f'[{target_dim}, T]'} with T >= 1"
        )
    if np.isinf(target).any():
        raise DataError(f"item {item!r}: target contains infinite values; use NaN for missing")
    if (np.abs(np.nan_to_num(target)) > MAX_ABS).any():
        raise DataError(f"item {item!r}: target values beyond +-{MAX_ABS:g}; rescale the series")
    if np.isnan(target).all():
        raise DataError(f"item {item!r}: every target value is missing (NaN)")
    T = target.shape[1]
    start = entry.get("start")
    if not isinstance(start, pd.Period):
        try:
            start = pd.Period(start, freq=freq)
        except (TypeError, ValueError) as e:
            raise DataError(f"item {item!r}: cannot read start {start!r} ({e})") from None
    full = pd.period_range(start, periods=T + horizon).to_timestamp()
    static = np.zeros(0, np.float32)
    if num_feat_static_real:
        static = _matrix(entry, "feat_static_real", num_feat_static_real, 1, item)[0]
    return Series(
        static_cat=_static_cat(entry, num_feat_static_cat, cardinality, item),
        item_id=item,
        index=full[:T],
        target=target.T.copy(),
        time_feat=time_features(full, freq),
        past_cov=_matrix(entry, "past_feat_dynamic_real", num_past_feat_dynamic_real, T, item),
        future_cov=_matrix(entry, "feat_dynamic_real", num_feat_dynamic_real, T + horizon, item),
        static_real=static,
    )


def _static_cat(entry: dict, k: int, cardinality, item: str) -> np.ndarray:
    """``entry["feat_static_cat"]`` -> int64 codes [k], each checked against its cardinality."""
    if k == 0:
        return np.zeros(0, np.int64)
    raw = entry.get("feat_static_cat")
    if raw is None:
        raise DataError(f"item {item!r}: field 'feat_static_cat' missing ({k} codes expected)")
    a = np.asarray(raw).reshape(-1)
    if a.shape[0] != k or not np.issubdtype(a.dtype, np.number) or np.isnan(a.astype(float)).any():
        raise DataError(
            f"item {item!r}: field 'feat_static_cat' is {raw!r}, expected {k} integer codes"
        )
    codes = a.astype(np.int64)
    for j, (code, n) in enumerate(zip(codes, cardinality, strict=True)):
        if code != a[j] or not 0 <= code < n:
            raise DataError(
                f"item {item!r}: feat_static_cat[{j}] = {a[j].item()!r}, expected an integer code in "
                f"0 .. {n - 1} (cardinality[{j}] = {n})"
            )
    return codes


def _columns(
    target_dim: int, n_fdr: int, n_pdr: int, n_sr: int, n_sc: int = 0, cardinality=()
) -> Columns:
    """Column names for the Forecaster checkpoint (so the CLI can read it with a long frame)."""
    return Columns(
        targets=["target"] if target_dim == 1 else [f"target_{c}" for c in range(target_dim)],
        past_covariates=[f"past_feat_dynamic_real_{k}" for k in range(n_pdr)],
        future_covariates=[f"feat_dynamic_real_{k}" for k in range(n_fdr)],
        static_real=[f"feat_static_real_{k}" for k in range(n_sr)],
        static_cat=[f"feat_static_cat_{k}" for k in range(n_sc)],
    )


def _categories(cardinality) -> dict[str, list[str]]:
    """Forecaster vocabularies of the GluonTS codes: value ``str(code)`` has code ``code``."""
    return {f"feat_static_cat_{j}": [str(c) for c in range(n)] for j, n in enumerate(cardinality)}


class TSDiffPredictor(Predictor):
    """Wraps a fitted :class:`tsdiff.Forecaster`; yields one ``SampleForecast`` per entry."""

    def __init__(
        self,
        forecaster: Forecaster,
        *,
        num_samples: int = 100,
        batch_size: int = 32,
        seed: int = 0,
        target_dim: int = 1,
        num_feat_dynamic_real: int = 0,
        num_past_feat_dynamic_real: int = 0,
        num_feat_static_real: int = 0,
        num_feat_static_cat: int = 0,
        cardinality: list[int] | None = None,
    ) -> None:
        super().__init__(prediction_length=forecaster.config.prediction_length)
        self.forecaster = forecaster
        self.freq = forecaster.config.freq
        self.options = {
            "num_samples": num_samples,
            "batch_size": batch_size,
            "seed": seed,
            "target_dim": target_dim,
            "num_feat_dynamic_real": num_feat_dynamic_real,
            "num_past_feat_dynamic_real": num_past_feat_dynamic_real,
            "num_feat_static_real": num_feat_static_real,
            "num_feat_static_cat": num_feat_static_cat,
            "cardinality": list(cardinality or []),
        }

    def _series(self, entry: dict, i: int) -> Series:
        o = self.options
        return entry_to_series(
            entry,
            self.freq,
            target_dim=o["target_dim"],
            num_feat_dynamic_real=o["num_feat_dynamic_real"],
            num_past_feat_dynamic_real=o["num_past_feat_dynamic_real"],
            num_feat_static_real=o["num_feat_static_real"],
            num_feat_static_cat=o["num_feat_static_cat"],
            cardinality=o["cardinality"],
            horizon=self.prediction_length,
            default_id=str(i),
        )

    def predict(
        self,
        dataset: Iterable[dict],
        num_samples: int | None = None,
        seed: int | None = None,
        **sampler: Any,
    ) -> Iterator[SampleForecast]:
        """Forecasts in dataset order; batch ``b`` of entries is sampled with seed ``seed + b``."""
        S = num_samples or self.options["num_samples"]
        seed = self.options["seed"] if seed is None else seed
        batch: list[tuple[dict, Series]] = []
        b = 0
        for i, entry in enumerate(dataset):
            batch.append((entry, self._series(entry, i)))
            if len(batch) == self.options["batch_size"]:
                yield from self._forecasts(batch, S, seed + b, sampler)
                batch, b = [], b + 1
        if batch:
            yield from self._forecasts(batch, S, seed + b, sampler)

    def _forecasts(self, batch, S: int, seed: int, sampler: dict) -> Iterator[SampleForecast]:
        c = self.forecaster.config
        windows = [
            make_window(s, len(s), c.context_length, c.prediction_length, c.freq) for _, s in batch
        ]
        samples, stats = self.forecaster._sample(windows, S, seed, **sampler)  # [B, S, H, C]
        for (entry, s), paths in zip(batch, samples, strict=True):
            start = entry["start"]
            if not isinstance(start, pd.Period):
                start = pd.Period(start, freq=self.freq)
            out = paths[..., 0] if self.options["target_dim"] == 1 else paths
            yield SampleForecast(
                samples=np.ascontiguousarray(out),
                start_date=start + len(s),
                item_id=entry.get("item_id"),
                info={"nfe": stats.nfe},
            )

    def serialize(self, path: Path) -> None:
        """Write ``gluonts-config.json``, ``predictor.json`` and the ``tsdiff/`` checkpoint."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.forecaster.save(path / "tsdiff")
        super().serialize(path)
        (path / "predictor.json").write_text(json.dumps(self.options, indent=2))

    @classmethod
    def deserialize(cls, path: Path, **kwargs: Any) -> TSDiffPredictor:
        """Inverse of :meth:`serialize` (keyword ``kwargs`` override the stored options)."""
        path = Path(path)
        opts = json.loads((path / "predictor.json").read_text())
        opts.update(kwargs)
        return cls(Forecaster.load(path / "tsdiff"), **opts)


class TSDiffEstimator(PyTorchLightningEstimator):
    """GluonTS estimator of the tsdiff masked-diffusion forecaster.

    Args mirror :class:`tsdiff.ForecasterConfig` (``max_steps`` optimiser steps of ``batch_size``
    random windows); ``target_dim`` and the ``num_*`` counts fix the input shapes (GluonTS
    convention); ``num_samples`` is the predictor's default number of sample paths;
    ``trainer_kwargs`` go to ``lightning.Trainer`` (checkpoints land in a temporary directory
    unless ``default_root_dir`` is given).
    """

    @validated()
    def __init__(
        self,
        freq: str,
        prediction_length: int,
        context_length: int | None = None,
        target_dim: int = 1,
        num_feat_dynamic_real: int = 0,
        num_past_feat_dynamic_real: int = 0,
        num_feat_static_real: int = 0,
        num_feat_static_cat: int = 0,
        cardinality: list[int] | None = None,
        patch_size: int = 8,
        n_bins: int = 256,
        d_model: int = 128,
        n_layers: int = 3,
        n_heads: int = 4,
        dropout: float = 0.0,
        batch_size: int = 64,
        lr: float = 1e-3,
        max_steps: int = 2000,
        seed: int = 0,
        order: str = "entropy",
        steps: int | None = None,
        block_length: int | None = None,
        calibrate: bool = True,
        calibration: str = "temperature",
        num_samples: int = 100,
        trainer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        kwargs = {
            "max_steps": max_steps,
            "accelerator": "cpu",
            "logger": False,
            "enable_model_summary": False,
            "gradient_clip_val": 1.0,
            **(trainer_kwargs or {}),
        }
        super().__init__(trainer_kwargs=kwargs)
        context_length = context_length or 4 * prediction_length
        if target_dim < 1:
            raise ValueError(f"target_dim: expected a positive integer, got {target_dim}")
        cardinality = list(cardinality or [])
        if len(cardinality) != num_feat_static_cat or any(
            not isinstance(n, int) or n < 1 for n in cardinality
        ):
            raise ValueError(
                f"cardinality: expected {num_feat_static_cat} positive integers (one per "
                f"feat_static_cat field, num_feat_static_cat={num_feat_static_cat}), "
                f"got {cardinality}"
            )
        self.config = ForecasterConfig(
            prediction_length=prediction_length,
            context_length=context_length,
            freq=freq,
            patch_size=patch_size,
            n_bins=n_bins,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            dropout=dropout,
            batch_size=batch_size,
            lr=lr,
            max_steps=max_steps,
            seed=seed,
            order=order,
            steps=steps,
            block_length=block_length,
            calibrate=calibrate,
            calibration=calibration,
        )
        self.freq, self.prediction_length = freq, prediction_length
        self.shapes = {
            "target_dim": target_dim,
            "num_feat_dynamic_real": num_feat_dynamic_real,
            "num_past_feat_dynamic_real": num_past_feat_dynamic_real,
            "num_feat_static_real": num_feat_static_real,
            "num_feat_static_cat": num_feat_static_cat,
            "cardinality": cardinality,
        }
        self.num_samples = num_samples
        self._val_series: list[Series] = []

    # ----------------------------------------------------------------- GluonTS hooks
    def create_transformation(self) -> Transformation:
        """Entries pass through unchanged; windowing happens in the data loaders."""
        return Identity()

    def create_lightning_module(self) -> TSDiffModule:
        c = self.config
        s = self.shapes
        mcfg = TSModelConfig(
            context_length=c.context_length,
            prediction_length=c.prediction_length,
            n_channels=s["target_dim"],
            patch_size=min(c.patch_size, c.context_length),
            n_bins=c.n_bins,
            d_model=c.d_model,
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            n_time_features=len(feature_names(c.freq)),
            n_past_covariates=s["num_past_feat_dynamic_real"],
            n_future_covariates=s["num_feat_dynamic_real"],
            n_static_real=s["num_feat_static_real"],
            static_cardinalities=list(s["cardinality"]),
        )
        warmup = min(100, c.max_steps // 10)
        return TSDiffModule(mcfg.to_dict(), lr=c.lr, max_steps=c.max_steps, warmup_steps=warmup)

    def _to_series(self, data: Iterable[dict]) -> list[Series]:
        out = [
            entry_to_series(e, self.freq, **self.shapes, default_id=str(i))
            for i, e in enumerate(data)
        ]
        if not out:
            raise DataError("training data: the dataset has no entries")
        return out

    def create_training_data_loader(self, data, module, **kwargs) -> DataLoader:
        c = self.config
        series = self._to_series(data)
        short = [s.item_id for s in series if len(s) <= c.prediction_length]
        if len(short) == len(series):
            raise DataError(
                f"training data: every series is at most prediction_length={c.prediction_length} "
                f"steps long (e.g. item {short[0]!r}); need more than that"
            )
        windows = TrainWindows(
            series,
            c.context_length,
            c.prediction_length,
            c.freq,
            n_windows=c.max_steps * c.batch_size,
            seed=c.seed,
        )
        return DataLoader(windows, batch_size=c.batch_size, collate_fn=collate, shuffle=False)

    def create_validation_data_loader(self, data, module, **kwargs) -> DataLoader:
        c = self.config
        H = c.prediction_length
        self._val_series = [s for s in self._to_series(data) if len(s) > H]
        if not self._val_series:
            raise DataError(f"validation data: no series longer than prediction_length={H}")
        windows = [
            make_window(s, len(s) - H, c.context_length, H, c.freq) for s in self._val_series
        ]
        return DataLoader(windows, batch_size=c.batch_size, collate_fn=collate, shuffle=False)

    def create_predictor(self, transformation: Transformation, module) -> TSDiffPredictor:
        c = self.config
        f = Forecaster(c)
        f.model = module.model.cpu().eval()
        s = self.shapes
        f.columns = _columns(
            s["target_dim"], s["num_feat_dynamic_real"], s["num_past_feat_dynamic_real"],
            s["num_feat_static_real"], s["num_feat_static_cat"], s["cardinality"],
        )  # fmt: skip
        f.categories = _categories(s["cardinality"])
        if c.calibrate and self._val_series:
            H = c.prediction_length
            val = [
                make_window(s, len(s) - H, c.context_length, H, c.freq) for s in self._val_series
            ]
            f._calibrate(val)
        return TSDiffPredictor(
            f, num_samples=self.num_samples, batch_size=c.batch_size, seed=c.seed, **self.shapes
        )

    def train_model(self, training_data, validation_data=None, **kwargs):
        """GluonTS's training loop; Lightning's checkpoints go to a temporary directory."""
        import lightning as L

        parse_freq(self.freq)
        L.seed_everything(self.config.seed, workers=True, verbose=False)
        self._val_series = []
        if "default_root_dir" in self.trainer_kwargs:
            return super().train_model(training_data, validation_data, **kwargs)
        with tempfile.TemporaryDirectory(prefix="tsdiff-gluonts-") as tmp:
            self.trainer_kwargs["default_root_dir"] = tmp
            try:
                return super().train_model(training_data, validation_data, **kwargs)
            finally:
                self.trainer_kwargs.pop("default_root_dir", None)


__all__ = ["TSDiffEstimator", "TSDiffPredictor", "entry_to_series"]
