"""Windows: (context, horizon) slices of :class:`~tsdiff.data.frames.Series`, as tensors.

A window ending at ``end`` has context steps ``[end - L, end)`` and horizon steps
``[end, end + H)``. A context that starts before the series is left-padded with unobserved cells
(observed = False), never with zeros passed off as data. Targets stay float64 up to the model's
scaling (:func:`tsdiff.encoding.target_scale`), so a level of 1e6 spreads keeps its digits; the
other arrays are float32. Batch shapes (B windows):

    ctx, ctx_obs         [B, L, C]     target values (0 where unobserved, float64) and observed mask
    fut, fut_obs         [B, H, C]     horizon targets (float64; training / backtests only)
    tf_ctx, tf_fut       [B, L|H, F]   calendar features
    lag_ctx, lag_ctx_obs [B, L, C, K]  the target K seasonal lags earlier (only with ``lags``;
    lag_fut, lag_fut_obs [B, H, C, K]  float64; unobserved before the series and from ``end``)
    pcov_ctx, pcov_obs   [B, L, Cp]    past-only covariates
    fcov_ctx, fcov_fut   [B, L|H, Cf]  known-future covariates
    static_real          [B, Sr]
    static_cat           [B, Sc]       category codes
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from tsdiff.data.frames import DataError, Series
from tsdiff.features import Calendar, parse_freq, time_features


def _slice(a: np.ndarray, start: int, stop: int, dtype=np.float32) -> np.ndarray:
    """Rows [start, stop) of a [T, K] array as ``dtype``, NaN-padded outside [0, T)."""
    T, K = a.shape
    out = np.full((stop - start, K), np.nan, dtype=dtype)
    lo, hi = max(start, 0), min(stop, T)
    if hi > lo:
        out[lo - start : hi - start] = a[lo:hi]
    return out


def future_index(series: Series, H: int, freq: str) -> pd.DatetimeIndex:
    """The H timestamps after the series' end."""
    return pd.date_range(series.index[-1], periods=H + 1, freq=parse_freq(freq))[1:]


def lag_arrays(series: Series, end: int, L: int, H: int, lags) -> dict:
    """``lag_*`` arrays of a window (module docstring): step t gets target[t - lag] for each
    lag, unobserved where t - lag falls before the series or at or after ``end`` (a value the
    forecast may not see: the horizon's own steps when lag < H)."""
    C, K = series.target.shape[1], len(lags)
    out = np.full((L + H, C, K), np.nan)
    for k, lag in enumerate(lags):
        out[:, :, k] = _slice(series.target, end - L - lag, end + H - lag, np.float64)
        out[L + lag :, :, k] = np.nan
    obs = ~np.isnan(out)
    out = np.nan_to_num(out)
    return {
        "lag_ctx": out[:L], "lag_ctx_obs": obs[:L], "lag_fut": out[L:], "lag_fut_obs": obs[L:]
    }  # fmt: skip


def make_window(
    series: Series,
    end: int,
    L: int,
    H: int,
    freq: str,
    lags: tuple[int, ...] | list[int] = (),
    calendar: Calendar | None = None,
) -> dict:
    """Arrays of one window (see module docstring; no batch dimension). ``lags``: seasonal lags
    in steps (tsdiff.features.seasonal_lags; none: no ``lag_*`` arrays); ``calendar``: the
    features of horizon steps beyond the series (default: tsdiff.features.time_features)."""
    ctx = _slice(series.target, end - L, end, np.float64)
    fut = _slice(series.target, end, end + H, np.float64)
    T = len(series)
    tf = series.time_feat
    if end + H > T:  # horizon beyond the data: calendar features of the future timestamps
        extra = future_index(series, end + H - T, freq)
        feats = calendar.features(extra) if calendar else time_features(extra, freq)
        tf = np.concatenate([tf, feats], axis=0)
    tf_ctx = np.nan_to_num(_slice(tf, end - L, end))
    tf_fut = np.nan_to_num(_slice(tf, end, end + H))
    pcov = _slice(series.past_cov, end - L, end)
    fcov_ctx = _slice(series.future_cov, end - L, end)
    fcov_fut = _slice(series.future_cov, end, end + H)
    out = lag_arrays(series, end, L, H, lags) if len(lags) else {}
    return out | {
        "ctx": np.nan_to_num(ctx),
        "ctx_obs": ~np.isnan(ctx),
        "fut": np.nan_to_num(fut),
        "fut_obs": ~np.isnan(fut),
        "tf_ctx": tf_ctx,
        "tf_fut": tf_fut,
        "pcov_ctx": np.nan_to_num(pcov),
        "pcov_obs": ~np.isnan(pcov),
        "fcov_ctx": np.nan_to_num(fcov_ctx),
        "fcov_fut": np.nan_to_num(fcov_fut),
        "static_real": series.static_real.astype(np.float32),
        "static_cat": series.static_cat.astype(np.int64),
    }


TARGET_KEYS = ("ctx", "ctx_obs", "fut", "fut_obs")
LAG_KEYS = ("lag_ctx", "lag_ctx_obs", "lag_fut", "lag_fut_obs")


def split_series(series: list[Series]) -> list[Series]:
    """Channel independence: each series of C target channels as C univariate series (item i,
    channel c at ``i * C + c``), with the channel index appended to ``static_cat`` so that one
    shared model knows which channel it forecasts. Covariates, calendar features and the other
    static features are shared (not copied)."""
    return [
        dataclasses.replace(
            s, target=s.target[:, c : c + 1], static_cat=np.append(s.static_cat, c).astype(np.int64)
        )
        for s in series
        for c in range(s.target.shape[1])
    ]


def split_channels(windows: list[dict]) -> list[dict]:
    """:func:`split_series` for windows: each window of C channels as C univariate windows
    (window i, channel c at ``i * C + c``); :func:`merge_channels` undoes it on sample paths."""
    out = []
    for w in windows:
        for c in range(w["ctx"].shape[-1]):
            v = dict(w)
            v.update({k: w[k][:, c : c + 1] for k in TARGET_KEYS + LAG_KEYS if k in w})
            v["static_cat"] = np.append(w["static_cat"], c).astype(np.int64)
            out.append(v)
    return out


def merge_channels(paths: torch.Tensor, n_channels: int) -> torch.Tensor:
    """Paths of split windows [N * C, S, H, 1] (window-major) -> [N, S, H, C]."""
    NC, S, H, _ = paths.shape
    return paths.reshape(NC // n_channels, n_channels, S, H).permute(0, 2, 3, 1)


def collate(windows: list[dict]) -> dict[str, torch.Tensor]:
    """Stack window dicts into batch tensors."""
    return {k: torch.from_numpy(np.stack([w[k] for w in windows])) for k in windows[0]}


class TrainWindows(Dataset):
    """Random training windows, reproducible: item ``i`` of epoch ``e`` is a fixed draw.

    Windows end at any step that leaves at least ``min_context`` context steps and a full
    horizon with at least one observed target; items are drawn with probability proportional to
    their number of valid windows.
    """

    def __init__(
        self,
        series: list[Series],
        L: int,
        H: int,
        freq: str,
        n_windows: int = 10_000,
        seed: int = 0,
        min_context: int = 1,
        lags: tuple[int, ...] | list[int] = (),
    ) -> None:
        self.series, self.L, self.H, self.freq, self.lags = series, L, H, freq, tuple(lags)
        self.n_windows, self.seed, self.epoch = n_windows, seed, 0
        self.ranges = [(min_context, len(s) - H) for s in series]
        counts = np.array([max(hi - lo + 1, 0) for lo, hi in self.ranges], dtype=np.float64)
        if counts.sum() == 0:
            raise DataError(
                f"no training window fits: every series is shorter than "
                f"prediction_length + {min_context} = {H + min_context} steps"
            )
        self.p = counts / counts.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_windows

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        for _ in range(20):
            k = int(rng.choice(len(self.series), p=self.p))
            lo, hi = self.ranges[k]
            end = int(rng.integers(lo, hi + 1))
            w = make_window(self.series[k], end, self.L, self.H, self.freq, self.lags)
            if w["fut_obs"].any():
                return w
        return w
