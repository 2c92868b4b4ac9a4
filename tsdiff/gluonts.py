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
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd

with warnings.catch_warnings():  # gluonts suggests orjson at import: nothing a user must act on
    warnings.filterwarnings("ignore", "Using `json`-module", UserWarning)
    import gluonts.json  # noqa: F401 - imported here, quietly, before gluonts imports it
from gluonts.core.component import validated
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor
from gluonts.torch.model.estimator import PyTorchLightningEstimator
from gluonts.transform import Identity, Transformation
from torch.utils.data import DataLoader

from tsdiff.config import ForecasterConfig
from tsdiff.data.entries import entry_to_series, gluonts_categories, gluonts_columns
from tsdiff.data.frames import DataError, Series
from tsdiff.data.windows import collate, make_window, split_channels
from tsdiff.features import parse_freq
from tsdiff.forecaster import Forecaster
from tsdiff.pretrained.zero_shot import bind_values
from tsdiff.train import (
    TSDiffModule,
    build_module,
    is_independent,
    model_config,
    quiet_lightning,
    train_loader,
)


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
            calendar=self.forecaster.calendar,
        )

    @classmethod
    def from_pretrained(
        cls, prediction_length: int, freq: str, *, path=None, target_dim: int = 1, **options
    ) -> TSDiffPredictor:
        """Zero-shot: a predictor on the pretrained base (:meth:`tsdiff.Forecaster.
        from_pretrained`; no training), for entries with a ``target`` only (covariate fields
        are not read). Each batch's target domain is taken from its entries' values."""
        f = Forecaster.from_pretrained(prediction_length, freq, path=path)
        return cls(f, target_dim=target_dim, **options)

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
        f, c = self.forecaster, self.forecaster.config
        if f.roles is not None:  # zero-shot: targets and their domain from this batch
            bind_values(f, [str(k) for k in range(self.options["target_dim"])],
                        np.concatenate([s.target for _, s in batch]))  # fmt: skip
        windows = [
            make_window(s, len(s), c.context_length, c.prediction_length, c.freq, f.lags,
                        f.calendar)
            for _, s in batch
        ]  # fmt: skip
        samples, stats = self.forecaster.sample(windows, S, seed, **sampler)  # [B, S, H, C]
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
    convention); ``domain`` as in the Forecaster, a dict naming the targets ``target``
    (univariate) or ``target_0``, ``target_1``, ...; ``num_samples`` is the predictor's default
    number of sample paths;
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
        mode: str = "masked",
        channels: str = "joint",
        scale_features: bool = False,
        covariate_scaling: str = "context",
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
        domain: str | dict = "auto",
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
            mode=mode,
            channels=channels,
            scale_features=scale_features,
            covariate_scaling=covariate_scaling,
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
            domain=domain,
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
        self._train_series: list[Series] = []

    # ----------------------------------------------------------------- GluonTS hooks
    def create_transformation(self) -> Transformation:
        """Entries pass through unchanged; windowing happens in the data loaders."""
        return Identity()

    def create_lightning_module(self) -> TSDiffModule:
        """The module of :mod:`tsdiff.train`, its model config from the estimator's
        :class:`~tsdiff.ForecasterConfig` and the training series (as Forecaster.fit)."""
        if not self._train_series:
            raise RuntimeError("TSDiffEstimator: train() sets up the training series first")
        targets = gluonts_columns(self.shapes["target_dim"], 0, 0, 0).targets  # domain names
        mcfg = model_config(
            self.config, self._train_series, self.shapes["cardinality"], targets=targets
        )
        return build_module(self.config, mcfg)

    def _to_series(self, data: Iterable[dict]) -> list[Series]:
        out = [
            entry_to_series(e, self.freq, **self.shapes, default_id=str(i))
            for i, e in enumerate(data)
        ]
        if not out:
            raise DataError("training data: the dataset has no entries")
        return out

    def _training_series(self, data: Iterable[dict]) -> list[Series]:
        c = self.config
        series = self._to_series(data)
        short = [s.item_id for s in series if len(s) <= c.prediction_length]
        if len(short) == len(series):
            raise DataError(
                f"training data: every series is at most prediction_length={c.prediction_length} "
                f"steps long (e.g. item {short[0]!r}); need more than that"
            )
        return series

    def create_training_data_loader(self, data, module, **kwargs) -> DataLoader:
        """Random training windows of the series read by :meth:`train_model` (``data``)."""
        return train_loader(self._train_series, self.config)

    def create_validation_data_loader(self, data, module, **kwargs) -> DataLoader:
        c = self.config
        H = c.prediction_length
        self._val_series = [s for s in self._to_series(data) if len(s) > H]
        if not self._val_series:
            raise DataError(f"validation data: no series longer than prediction_length={H}")
        windows = [
            make_window(s, len(s) - H, c.context_length, H, c.freq) for s in self._val_series
        ]
        if is_independent(c, self.shapes["target_dim"]):  # the model sees one channel a window
            windows = split_channels(windows)
        return DataLoader(windows, batch_size=c.batch_size, collate_fn=collate, shuffle=False)

    def create_predictor(self, transformation: Transformation, module) -> TSDiffPredictor:
        c, s = self.config, self.shapes
        columns = gluonts_columns(
            s["target_dim"], s["num_feat_dynamic_real"], s["num_past_feat_dynamic_real"],
            s["num_feat_static_real"], s["num_feat_static_cat"], s["cardinality"],
        )  # fmt: skip
        f = Forecaster.from_model(
            c, module.model.cpu(), columns, gluonts_categories(s["cardinality"])
        )
        if c.calibrate and self._val_series:
            H = c.prediction_length
            val = [
                make_window(s, len(s) - H, c.context_length, H, c.freq) for s in self._val_series
            ]
            f.calibrate(val)
        return TSDiffPredictor(
            f, num_samples=self.num_samples, batch_size=c.batch_size, seed=c.seed, **self.shapes
        )

    def train_model(self, training_data, validation_data=None, **kwargs):
        """GluonTS's training loop; Lightning's checkpoints go to a temporary directory. Quiet
        as ``Forecaster.fit``: none of Lightning's start-up lines, checkpoint notes or spurious
        warnings (:func:`tsdiff.train.quiet_lightning`)."""
        parse_freq(self.freq)
        L.seed_everything(self.config.seed, workers=True, verbose=False)
        self._val_series = []
        self._train_series = self._training_series(training_data)
        with quiet_lightning():
            return self._train_model(training_data, validation_data, **kwargs)

    def _train_model(self, training_data, validation_data=None, **kwargs):
        if "default_root_dir" in self.trainer_kwargs:
            return super().train_model(training_data, validation_data, **kwargs)
        with tempfile.TemporaryDirectory(prefix="tsdiff-gluonts-") as tmp:
            self.trainer_kwargs["default_root_dir"] = tmp
            try:
                return super().train_model(training_data, validation_data, **kwargs)
            finally:
                self.trainer_kwargs.pop("default_root_dir", None)


__all__ = ["TSDiffEstimator", "TSDiffPredictor", "entry_to_series"]
