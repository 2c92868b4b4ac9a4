"""Rolling-origin backtest protocols on long frames: which windows are forecast, in which order.

A :class:`Protocol` names the horizon, context, season and target columns of a data set and its
test origins (first forecast timestamps); :func:`window_splits` cuts a long frame (one row per
``item_id`` and ``timestamp``) into the training part and the test windows, and
:func:`origin_positions` gives the row positions of every item's origins. The demo, ETS
(:mod:`tsdiff.baselines`) and the benchmarks share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Protocol:
    """A rolling-origin backtest protocol.

    Attributes:
        name: data set name.
        freq: pandas frequency alias of the regular grid.
        prediction_length: horizon ``H``.
        context_length: context the models see at each origin.
        season_length: seasonal period (seasonal naive, MASE/MSIS scale, ETS).
        target_columns: the ``C`` forecast channels, in order.
        test_origins: shared origins (first forecast timestamps) for all items; empty when
            ``n_test_windows`` counts windows from each series' own end instead.
        n_test_windows: with no shared origins: the last ``n`` non-overlapping windows per item.
        known_covariates: columns known over the horizon (usable as ``feat_dynamic_real``).
        past_covariates: columns observed only up to the origin.
    """

    name: str
    freq: str
    prediction_length: int
    context_length: int
    season_length: int
    target_columns: tuple[str, ...]
    test_origins: tuple[pd.Timestamp, ...] = ()
    n_test_windows: int = 0
    known_covariates: tuple[str, ...] = ()
    past_covariates: tuple[str, ...] = field(default_factory=tuple)

    @property
    def covariate_columns(self) -> tuple[str, ...]:
        return self.known_covariates + self.past_covariates

    @property
    def n_windows(self) -> int:
        return len(self.test_origins) or self.n_test_windows


def item_origins(item: pd.DataFrame, protocol: Protocol) -> list[pd.Timestamp]:
    """Test origins of one item (shared origins, or the last windows from its end)."""
    if protocol.test_origins:
        return list(protocol.test_origins)
    ts = item["timestamp"]
    h = protocol.prediction_length
    return [ts.iloc[len(ts) - k * h] for k in range(protocol.n_test_windows, 0, -1)]


def window_splits(
    df: pd.DataFrame, protocol: Protocol
) -> tuple[pd.DataFrame, list[tuple[pd.DataFrame, pd.DataFrame]]]:
    """Split a long frame into the training part and the test windows.

    Returns:
        ``train``: for each item, its rows before its first test origin.
        ``windows``: ``(context, future)`` pairs in (item, origin) order; ``context`` holds the
        ``context_length`` rows before the origin (fewer if the item is shorter), ``future`` the
        ``prediction_length`` rows from the origin on. Both keep all columns.
    """
    train, windows = [], []
    h, ctx = protocol.prediction_length, protocol.context_length
    for _, item in df.groupby("item_id", sort=False):
        item = item.reset_index(drop=True)
        origins = item_origins(item, protocol)
        pos = item["timestamp"].searchsorted(pd.DatetimeIndex(origins))
        train.append(item.iloc[: pos[0]])
        for p in pos:
            future = item.iloc[p : p + h]
            if len(future) < h:
                raise ValueError(
                    f"window at row {p} of {item['item_id'].iloc[0]} runs past the end"
                )
            windows.append((item.iloc[max(0, p - ctx) : p], future))
    return pd.concat(train, ignore_index=True), windows


def windows_to_arrays(
    windows: list[tuple[pd.DataFrame, pd.DataFrame]], protocol: Protocol
) -> tuple[list[np.ndarray], np.ndarray]:
    """Targets of the windows as arrays: contexts (list of ``[T_i, C]``) and futures ``[N, H, C]``."""
    cols = list(protocol.target_columns)
    ctx = [c[cols].to_numpy(np.float64) for c, _ in windows]
    fut = np.stack([f[cols].to_numpy(np.float64) for _, f in windows])
    return ctx, fut


def daily_origins(first: str, last: str, times=("00:00",)) -> tuple[pd.Timestamp, ...]:
    """Origins at ``times`` of every day from ``first`` to ``last`` (inclusive), sorted."""
    days = pd.date_range(first, last, freq="D")
    return tuple(sorted(d + pd.Timedelta(t + ":00") for d in days for t in times))


def origin_positions(df: pd.DataFrame, protocol: Protocol) -> list[tuple[str, pd.DataFrame, list]]:
    """Per item: its rows and the row positions of its test origins (window order)."""
    _, windows = window_splits(df, protocol)
    out, by_item = [], {}
    for _, future in windows:
        by_item.setdefault(future["item_id"].iloc[0], []).append(future["timestamp"].iloc[0])
    for item_id, rows in df.groupby("item_id", sort=False):
        rows = rows.reset_index(drop=True)
        pos = list(rows["timestamp"].searchsorted(pd.DatetimeIndex(by_item[item_id])))
        out.append((item_id, rows, pos))
    return out
