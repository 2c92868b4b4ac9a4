"""Peer forecasters on the benchmark windows: seasonal naive, ETS (statsmodels), DeepAR and
PatchTST (GluonTS torch).

Every peer takes the long frame and :class:`~benchmarks.datasets.Protocol` of a loader, forecasts
the windows of :func:`~benchmarks.datasets.window_splits` (same order) and returns a
:class:`PeerResult` with sample paths ``[N_windows, S, H, C]`` plus fit and predict wall-clock.
Multichannel targets are handled channel by channel (one univariate model per channel for ETS,
one global model over all (item, channel) series with the channel as a static category for the
GluonTS models), so their channels are sampled independently. ``quick=True`` shrinks every fit
for smoke tests; its numbers are not benchmark results.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsdiff.baselines import ets_samples
from tsdiff.data.protocol import Protocol, origin_positions


@dataclass
class PeerResult:
    """samples: ``[N, S, H, C]``, or None for a quantile model (TFT), whose quantiles are
    ``[Q, N, H, C]`` at ``levels``; seconds of wall-clock spent fitting and forecasting."""

    name: str
    samples: np.ndarray | None
    fit_seconds: float
    predict_seconds: float
    quantiles: np.ndarray | None = None
    levels: tuple[float, ...] = ()


def seasonal_naive(df: pd.DataFrame, protocol: Protocol, n_samples: int = 100) -> PeerResult:
    """Repeat the last season before each origin; all ``S`` paths equal the point forecast."""
    t0 = time.perf_counter()
    m, h = protocol.season_length, protocol.prediction_length
    paths = []
    for _, rows, positions in origin_positions(df, protocol):
        y = rows[list(protocol.target_columns)].to_numpy(np.float64)
        for p in positions:
            idx = p - m + (np.arange(h) % m) - m * (np.arange(h) // m)
            paths.append(np.broadcast_to(y[idx], (n_samples, h, y.shape[1])))
    return PeerResult("seasonal_naive", np.stack(paths), 0.0, time.perf_counter() - t0)


def ets(
    df: pd.DataFrame,
    protocol: Protocol,
    n_samples: int = 100,
    seed: int = 0,
    spec: str | tuple = "auto",
    max_fit_length: int | None = None,
    quick: bool = False,
) -> PeerResult:
    """ETS (statsmodels), one model per (item, channel): :func:`tsdiff.baselines.ets_samples`."""
    samples, fit_s, pred_s = ets_samples(
        df, protocol, n_samples=n_samples, seed=seed, spec=spec, max_fit_length=max_fit_length,
        quick=quick,
    )  # fmt: skip
    return PeerResult("ets", samples, fit_s, pred_s)


def _period_freq(freq: str) -> str:
    """Period alias of a frequency: pandas Periods (and so GluonTS) take M, not MS / ME."""
    return {"MS": "M", "ME": "M", "QS": "Q", "QE": "Q", "YS": "Y", "YE": "Y", "AS": "Y"}.get(
        freq, freq
    )


def _time_features(freq: str):
    """GluonTS default calendar features, without day-of-year for hourly and finer data (a model
    trained on under a year never sees the test days' values: the DATA.md trap)."""
    from gluonts.time_feature import time_features_from_frequency_str  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    feats = time_features_from_frequency_str(freq)
    try:  # MonthBegin etc. have no fixed length (and are never sub-daily)
        sub_daily = pd.Timedelta(pd.tseries.frequencies.to_offset(freq).nanos, "ns") < pd.Timedelta(
            "1D"
        )
    except ValueError:
        sub_daily = False
    if sub_daily:
        feats = [f for f in feats if getattr(f, "__name__", "") != "day_of_year"]
    return feats


def _entries(df, protocol, use_covariates: bool):
    """GluonTS entries: training series (``horizon_ends=False``) or one per window and channel."""
    cols = list(protocol.known_covariates) if use_covariates else []
    h = protocol.prediction_length
    train, test = [], []
    for _, rows, positions in origin_positions(df, protocol):
        start = pd.Period(rows["timestamp"].iloc[0], freq=_period_freq(protocol.freq))
        cov = rows[cols].to_numpy(np.float32).T
        for c, col in enumerate(protocol.target_columns):
            y = rows[col].to_numpy(np.float32)
            base = {"start": start, "feat_static_cat": [c]}
            train.append(
                {**base, "target": y[: positions[0]], "feat_dynamic_real": cov[:, : positions[0]]}
            )
            for k, p in enumerate(positions):
                test.append(({**base, "target": y[:p], "feat_dynamic_real": cov[:, : p + h]}, k, c))
    return train, test


def _gluonts_peer(name, estimator_cls, df, protocol, n_samples, seed, use_covariates, kwargs):
    """Train one GluonTS torch estimator on all (item, channel) series, forecast every window."""
    import lightning.pytorch as pl  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    from gluonts.dataset.common import ListDataset  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    pl.seed_everything(seed, workers=True, verbose=False)
    train, test = _entries(df, protocol, use_covariates)
    if not use_covariates:
        for e in train + [t[0] for t in test]:
            e.pop("feat_dynamic_real")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peer_") as tmp:  # lightning checkpoints land here
        kwargs["trainer_kwargs"] = {**kwargs["trainer_kwargs"], "default_root_dir": tmp}
        predictor = estimator_cls(**kwargs).train(
            ListDataset(train, freq=_period_freq(protocol.freq))
        )
    t1 = time.perf_counter()
    fcs = list(
        predictor.predict(
            ListDataset([t[0] for t in test], freq=_period_freq(protocol.freq)),
            num_samples=n_samples,
        )
    )
    n_windows, n_ch = len(test) // len(protocol.target_columns), len(protocol.target_columns)
    per_channel: dict[int, list] = {}
    levels: tuple[float, ...] = ()
    for (_, _, c), fc in zip(test, fcs, strict=True):  # test is ordered item -> channel -> window
        if hasattr(fc, "forecast_keys"):  # TFT: quantiles only -> [Q, H]
            levels = levels or tuple(sorted(float(k) for k in fc.forecast_keys if k != "mean"))
            per_channel.setdefault(c, []).append(np.stack([fc.quantile(q) for q in levels]))
            continue
        if not hasattr(fc, "samples"):  # PatchTST: per-step marginals, not coherent paths
            fc = fc.to_sample_forecast(n_samples)
        per_channel.setdefault(c, []).append(fc.samples)
    seconds = (t1 - t0, time.perf_counter() - t1)
    if levels:
        q = np.stack([np.stack(per_channel[c], axis=1) for c in range(n_ch)], axis=-1)
        return PeerResult(name, None, *seconds, quantiles=q, levels=levels)  # q [Q, N, H, C]
    samples = np.empty((n_windows, n_samples, protocol.prediction_length, n_ch))
    for c in range(n_ch):
        samples[..., c] = np.stack(per_channel[c])
    return PeerResult(name, samples, *seconds)


def _trainer_kwargs(max_epochs: int) -> dict:
    return {
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
    }


def deepar(
    df: pd.DataFrame,
    protocol: Protocol,
    n_samples: int = 100,
    seed: int = 0,
    max_epochs: int = 30,
    use_covariates: bool = False,
    quick: bool = False,
    **estimator_kwargs,
) -> PeerResult:
    """GluonTS torch DeepAR (Student-t), trained once on the data before the first origins.

    ``use_covariates`` feeds the protocol's known covariates as ``feat_dynamic_real``; calendar
    features per :func:`_time_features`; the channel index is a static category.
    """
    from gluonts.torch.model.deepar import DeepAREstimator  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    kwargs = dict(
        freq=_period_freq(protocol.freq), prediction_length=protocol.prediction_length,
        context_length=protocol.context_length, time_features=_time_features(protocol.freq),
        num_feat_dynamic_real=len(protocol.known_covariates) if use_covariates else 0,
        num_feat_static_cat=1, cardinality=[len(protocol.target_columns)],
        trainer_kwargs=_trainer_kwargs(1 if quick else max_epochs),
    )  # fmt: skip
    if quick:
        kwargs.update(num_batches_per_epoch=3, hidden_size=8, num_layers=1, dropout_rate=0.0)
    kwargs.update(estimator_kwargs)
    name = "deepar+cov" if use_covariates else "deepar"
    return _gluonts_peer(
        name, DeepAREstimator, df, protocol, n_samples, seed, use_covariates, kwargs
    )


def patchtst(
    df: pd.DataFrame,
    protocol: Protocol,
    n_samples: int = 100,
    seed: int = 0,
    max_epochs: int = 30,
    quick: bool = False,
    **estimator_kwargs,
) -> PeerResult:
    """GluonTS torch PatchTST (univariate per channel, no covariates), patch = season or 16."""
    from gluonts.torch.model.patch_tst import PatchTSTEstimator  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    patch = min(protocol.season_length, 16, protocol.context_length)
    kwargs = dict(
        prediction_length=protocol.prediction_length, context_length=protocol.context_length,
        patch_len=patch, stride=patch, trainer_kwargs=_trainer_kwargs(1 if quick else max_epochs),
    )  # fmt: skip
    if quick:
        kwargs.update(num_batches_per_epoch=3, d_model=16, nhead=2, num_encoder_layers=1)
    kwargs.update(estimator_kwargs)
    return _gluonts_peer(
        "patchtst", PatchTSTEstimator, df, protocol, n_samples, seed, False, kwargs
    )


PEERS = {"seasonal_naive": seasonal_naive, "ets": ets, "deepar": deepar, "patchtst": patchtst}
