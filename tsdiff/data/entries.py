"""GluonTS entries in: one entry (``target``, ``start``, ``feat_*`` fields) -> :class:`Series`.

Field conventions are those of :mod:`tsdiff.gluonts` (which re-exports :func:`entry_to_series`);
the column names of :func:`gluonts_columns` let a checkpoint trained on entries read long frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.frames import MAX_ABS, Columns, DataError, Series
from tsdiff.features import Calendar, time_features


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
    calendar: Calendar | None = None,
) -> Series:
    """One GluonTS entry -> :class:`Series`; ``horizon > 0`` also reads future covariates / calendar.
    ``calendar``: the model's calendar inputs (default: the frequency's legacy features).

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
        time_feat=calendar.features(full) if calendar else time_features(full, freq),
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


def gluonts_columns(
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


def gluonts_categories(cardinality) -> dict[str, list[str]]:
    """Forecaster vocabularies of the GluonTS codes: value ``str(code)`` has code ``code``."""
    return {f"feat_static_cat_{j}": [str(c) for c in range(n)] for j, n in enumerate(cardinality)}
