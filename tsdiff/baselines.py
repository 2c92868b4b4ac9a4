"""Reference forecasters computed on the same backtest windows as tsdiff (numpy only).

Seasonal naive repeats the last observed season of the history: ``y_hat[h] = y[T - m + (h mod m)]``
with ``m`` the season length. Missing history values are forward-filled first (then
back-filled); a channel with no observed value at all forecasts 0. When the history is shorter
than one season, the last observed value is repeated (naive).
"""

from __future__ import annotations

import numpy as np


def _fill(history: np.ndarray) -> np.ndarray:
    """Forward- then back-fill NaNs per channel of ``[T, C]``; all-NaN channels become 0."""
    h = np.array(history, dtype=np.float64)
    for c in range(h.shape[1]):
        col = h[:, c]
        ok = ~np.isnan(col)
        if not ok.any():
            h[:, c] = 0.0
            continue
        idx = np.where(ok, np.arange(len(col)), 0)
        np.maximum.accumulate(idx, out=idx)
        col = col[idx]
        first = np.argmax(ok)
        col[:first] = col[first]
        h[:, c] = col
    return h


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Point forecast ``[H, C]`` from a history ``[T, C]`` (or ``[T]`` -> ``[H]``).

    Args:
        history: past values, NaN where unobserved; T >= 1.
        horizon: H steps to forecast.
        season: m >= 1 (1 = naive).
    """
    if season < 1:
        raise ValueError(f"season: expected a positive integer, got {season}")
    h = np.asarray(history, dtype=np.float64)
    flat = h.ndim == 1
    h = _fill(h[:, None] if flat else h)
    if len(h) == 0:
        raise ValueError("history: expected at least one time step")
    m = season if len(h) >= season else 1
    last = h[len(h) - m :]
    out = last[np.arange(horizon) % m]
    return out[:, 0] if flat else out


def seasonal_naive_samples(insample: list[np.ndarray], horizon: int, season: int) -> np.ndarray:
    """Seasonal naive for every backtest window as a one-path ensemble: ``[N, 1, H, C]``.

    Args:
        insample: length-N list of histories ``[T_n, C]`` (as ``Forecaster.backtest`` returns).
    """
    return np.stack([seasonal_naive(np.asarray(z), horizon, season)[None] for z in insample])


__all__ = ["seasonal_naive", "seasonal_naive_samples"]
