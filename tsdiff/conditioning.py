"""Known-future covariates and actions for the horizon.

A model trained with ``future_covariates`` needs their values for every forecast step. They come
in a separate long frame (``item_id``, ``timestamp``, the covariate columns) covering the H steps
after each item's history; an action plan is exactly such a frame, set by the user.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.frames import Columns, DataError, Series
from tsdiff.data.windows import future_index
from tsdiff.features import Calendar, time_features


def future_block(
    series: Series, future: pd.DataFrame | None, cols: Columns, H: int, freq: str, *, what="future"
) -> np.ndarray:
    """Known-future covariate values [H, Cf] for the H steps after ``series``.

    Raises DataError naming the item, the column or the missing timestamps when ``future`` does
    not cover the whole horizon with finite numbers.
    """
    names = cols.future_covariates
    if not names:
        return np.zeros((H, 0), np.float32)
    if future is None:
        raise DataError(
            f"{what}: this model uses future covariates {names}; pass a frame with their values "
            f"for the {H} steps after each item's history"
        )
    missing_cols = [c for c in [cols.item_id, cols.timestamp, *names] if c not in future.columns]
    if missing_cols:
        raise DataError(f"{what}: unknown column(s) {missing_cols}; it has {list(future.columns)}")
    steps = future_index(series, H, freq)
    rows = future[future[cols.item_id].astype(str) == series.item_id]
    if rows.empty:
        raise DataError(f"{what}: no rows for item {series.item_id!r}")
    rows = rows.assign(**{cols.timestamp: pd.to_datetime(rows[cols.timestamp])})
    rows = rows.drop_duplicates(cols.timestamp, keep="last").set_index(cols.timestamp)
    absent = steps.difference(rows.index)
    if len(absent):
        raise DataError(
            f"{what}: item {series.item_id!r} lacks {len(absent)} of the {H} horizon steps, "
            f"e.g. {[str(t) for t in absent[:3]]}"
        )
    block = rows.loc[steps, names]
    for c in names:
        if not pd.api.types.is_numeric_dtype(block[c]) and not pd.api.types.is_bool_dtype(block[c]):
            raise DataError(f"{what}: column {c!r} must hold numbers, got dtype {block[c].dtype}")
    vals = block.to_numpy(dtype=np.float64)
    if not np.isfinite(vals).all():
        bad = [c for j, c in enumerate(names) if not np.isfinite(vals[:, j]).all()]
        raise DataError(f"{what}: item {series.item_id!r} has NaN or infinite values in {bad}")
    return vals.astype(np.float32)


def extend(series: Series, fcov: np.ndarray, freq: str, calendar: Calendar | None = None) -> Series:
    """``series`` followed by len(fcov) unobserved steps carrying the given future covariates
    (and the features of ``calendar``, default :func:`tsdiff.features.time_features`)."""
    H = len(fcov)
    steps = future_index(series, H, freq)
    C, Cp = series.target.shape[1], series.past_cov.shape[1]
    feats = calendar.features(steps) if calendar else time_features(steps, freq)
    return Series(
        item_id=series.item_id,
        index=series.index.append(steps),
        target=np.concatenate([series.target, np.full((H, C), np.nan, np.float32)]),
        time_feat=np.concatenate([series.time_feat, feats]),
        past_cov=np.concatenate([series.past_cov, np.full((H, Cp), np.nan, np.float32)]),
        future_cov=np.concatenate([series.future_cov, fcov]),
        static_real=series.static_real,
        static_cat=series.static_cat,
    )
