"""Calendar features derived from the frequency.

Only cyclic features that a short history shows many full periods of: hour of day for sub-daily
data, day of week for daily and finer, month of year for monthly and quarterly (where training
sees several years). Never day-of-year: a model trained on under a year of half-hourly data has
never seen most of its values (../shared/DATA.md: it sank DeepAR on elecdemand).
Each feature is encoded as (sin, cos) of its phase.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def parse_freq(freq: str) -> pd.DateOffset:
    """pandas offset for ``freq``; a clear ValueError naming the flag when pandas cannot parse it."""
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as e:
        raise ValueError(f"freq: pandas cannot parse {freq!r} as a frequency ({e})") from None


def _kind(freq: str) -> str:
    off = parse_freq(freq)
    delta = None
    try:
        delta = pd.Timedelta(off)
    except (ValueError, TypeError):
        pass
    if delta is not None:
        if delta < pd.Timedelta(days=1):
            return "subdaily"
        if delta < pd.Timedelta(days=7):
            return "daily"
        return "weekly"
    name = type(off).__name__
    if "Week" in name:
        return "weekly"
    if "Month" in name or "Quarter" in name:
        return "monthly"
    return "yearly"


def feature_names(freq: str) -> list[str]:
    """Names of the features ``time_features`` returns for this frequency."""
    kind = _kind(freq)
    names: list[str] = []
    if kind == "subdaily":
        names += ["hour_sin", "hour_cos"]
    if kind in ("subdaily", "daily"):
        names += ["dow_sin", "dow_cos"]
    if kind in ("monthly", "weekly"):
        names += ["month_sin", "month_cos"]
    return names


def time_features(index: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """[len(index), F] float32 calendar features (F = len(feature_names(freq)), may be 0)."""
    kind = _kind(freq)
    cols = []

    def cyc(phase: np.ndarray) -> None:
        cols.extend([np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)])

    if kind == "subdaily":
        cyc((index.hour.to_numpy() + index.minute.to_numpy() / 60.0) / 24.0)
    if kind in ("subdaily", "daily"):
        cyc(index.dayofweek.to_numpy() / 7.0)
    if kind in ("monthly", "weekly"):
        cyc((index.month.to_numpy() - 1) / 12.0)
    if not cols:
        return np.zeros((len(index), 0), dtype=np.float32)
    return np.stack(cols, axis=-1).astype(np.float32)


def season_length(freq: str) -> int:
    """A default seasonal period (for seasonal naive and MASE): 24/day for hourly, 12 for monthly."""
    off = parse_freq(freq)
    try:
        delta = pd.Timedelta(off)
        if delta < pd.Timedelta(days=1):
            return max(1, int(pd.Timedelta(days=1) / delta))
        if delta < pd.Timedelta(days=7):
            return 7
        return 52
    except (ValueError, TypeError):
        name = type(off).__name__
        if "Month" in name:
            return 12
        if "Quarter" in name:
            return 4
        return 1
