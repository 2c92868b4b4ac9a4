"""Long pandas DataFrames in, validated per-item arrays out.

A long frame has one row per (item, timestamp) with one or more target columns side by side
(a wide frame per item), plus optional covariate columns::

    item_id | timestamp           | demand | temp  | workday
    a       | 2014-01-01 00:00:00 | 3.9    | 18.1  | 0
    a       | 2014-01-01 00:30:00 | 3.7    | 17.9  | 0

Documented handling of messy input:

- unsorted rows are sorted by (item, timestamp);
- gaps (timestamps missing on the ``freq`` grid) become rows with NaN targets, i.e. unobserved
  cells that the model never treats as zeros;
- NaN targets are unobserved; an item whose target is all NaN is an error;
- duplicate timestamps within an item, timestamps off the ``freq`` grid, missing (NaT) or
  unparseable timestamps, missing item ids, infinite values, values beyond ``+-MAX_ABS`` (1e16:
  the model computes in float32, whose squares overflow past about 1e19; rescale such columns),
  non-numeric targets, unknown columns: a :class:`DataError` naming the item / column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tsdiff.features import Calendar, parse_freq, time_features

MAX_ABS = 1e16
"""Largest |value| accepted in numeric columns (float32 arithmetic of the scaling)."""


class DataError(ValueError):
    """A user's data does not fit what was asked; the message names the column or item."""


@dataclass
class Series:
    """One item, on a regular ``freq`` grid.

    Attributes:
        target: [T, C] float64 (any float dtype accepted), NaN where unobserved.
        time_feat: [T, F] calendar features.
        past_cov: [T, Cp] past-only covariates (NaN where unobserved).
        future_cov: [T, Cf] known-future covariates.
        static_real: [Sr]; static_cat: [Sc] int64 codes.
    """

    item_id: str
    index: pd.DatetimeIndex
    target: np.ndarray
    time_feat: np.ndarray
    past_cov: np.ndarray
    future_cov: np.ndarray
    static_real: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    static_cat: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class Columns:
    """Which columns of the long frame play which role."""

    targets: list[str]
    item_id: str = "item_id"
    timestamp: str = "timestamp"
    past_covariates: list[str] = field(default_factory=list)
    future_covariates: list[str] = field(default_factory=list)
    static_real: list[str] = field(default_factory=list)
    static_cat: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [
            self.item_id,
            self.timestamp,
            *self.targets,
            *self.past_covariates,
            *self.future_covariates,
            *self.static_real,
            *self.static_cat,
        ]


def _check_columns(df: pd.DataFrame, cols: Columns) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"data: expected a pandas DataFrame, got {type(df).__name__}")
    if not cols.targets:
        raise DataError("target: name at least one target column")
    missing = [c for c in cols.all() if c not in df.columns]
    if missing:
        raise DataError(f"unknown column(s) {missing}; the frame has {list(df.columns)}")
    numeric = [*cols.targets, *cols.past_covariates, *cols.future_covariates, *cols.static_real]
    for c in numeric:
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            if pd.api.types.is_bool_dtype(df[c]):
                continue
            raise DataError(f"column {c!r}: expected numbers, got dtype {df[c].dtype}")
        vals = df[c].to_numpy(dtype=np.float64)
        if np.isinf(vals).any():
            raise DataError(f"column {c!r}: contains infinite values; use NaN for missing")
        big = np.abs(np.nan_to_num(vals)) > MAX_ABS
        if big.any():
            raise DataError(
                f"column {c!r}: values up to +-{MAX_ABS:g} are supported, got "
                f"{vals[big][0]:g}; rescale the column"
            )
    if df[cols.item_id].isna().any():
        n = int(df[cols.item_id].isna().sum())
        raise DataError(f"column {cols.item_id!r}: {n} row(s) without an item id")


def _timestamps(df: pd.DataFrame, col: str) -> pd.Series:
    try:
        ts = pd.to_datetime(df[col])
    except (ValueError, TypeError) as e:
        raise DataError(f"column {col!r}: cannot parse as timestamps ({e})") from None
    if ts.isna().any():
        rows = ts.index[ts.isna()][:3].tolist()
        raise DataError(f"column {col!r}: missing timestamps (NaT) in rows {rows}")
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert(None)
    return ts


MAX_SHARED_GRID = 5_000_000  # steps of the one grid shared by all items (else one per item)


def _shared_grid(ts: pd.Series, freq: str) -> pd.DatetimeIndex | None:
    """One regular grid from the earliest to the latest timestamp of the frame, so that items on
    it slice it instead of each building its own (``pd.date_range`` of calendar offsets such as
    MS is a Python loop); None when it would exceed MAX_SHARED_GRID steps."""
    offset = parse_freq(freq)
    lo, hi = ts.min(), ts.max()
    try:
        if (hi - lo) / pd.Timedelta(offset.nanos, "ns") > MAX_SHARED_GRID:
            return None
    except ValueError:  # calendar offsets (months and longer) have no fixed length: small grids
        pass
    return pd.date_range(lo, hi, freq=offset)


def _regular_index(
    item, ts: pd.Series, freq: str, col: str, grid: pd.DatetimeIndex | None = None
) -> pd.DatetimeIndex:
    """The item's regular index from its first to its last timestamp (a slice of ``grid`` when
    the item starts on it, else its own ``date_range``); off-grid or duplicate stamps: DataError."""
    if ts.duplicated().any():
        dup = ts[ts.duplicated()].iloc[:3].tolist()
        raise DataError(f"item {item!r}: duplicate timestamps in {col!r}, e.g. {dup}")
    ends = grid.get_indexer([ts.iloc[0], ts.iloc[-1]]) if grid is not None else [-1, -1]
    if min(ends) >= 0:
        full = grid[ends[0] : ends[1] + 1]
    else:  # another phase than the shared grid's (or none): the item's own grid
        full = pd.date_range(ts.iloc[0], ts.iloc[-1], freq=parse_freq(freq))
    off_grid = ~ts.isin(full)
    if off_grid.any():
        bad = ts[off_grid].iloc[:3].tolist()
        raise DataError(
            f"item {item!r}: timestamps {bad} do not fall on the freq={freq!r} grid "
            f"starting at {ts.iloc[0]}"
        )
    return full


def frame_to_series(
    df: pd.DataFrame,
    cols: Columns,
    freq: str,
    min_length: int = 1,
    categories: dict[str, list[str]] | None = None,
    calendar: Calendar | None = None,
) -> list[Series]:
    """Validate a long frame and split it into regular per-item :class:`Series`.

    ``categories``: the known values of each static categorical column (see
    :func:`category_vocab`); a value outside them is a DataError. ``calendar``: the calendar
    features of the model (default: :func:`tsdiff.features.time_features` of ``freq``).
    """
    _check_columns(df, cols)
    parse_freq(freq)
    if len(df) == 0:
        raise DataError("data: the frame has no rows")
    df = df.copy()
    df[cols.timestamp] = _timestamps(df, cols.timestamp)
    df = df.sort_values([cols.item_id, cols.timestamp], kind="stable")
    out = []
    grid = _shared_grid(df[cols.timestamp], freq)
    for item, g in df.groupby(cols.item_id, sort=False):
        ts = g[cols.timestamp].reset_index(drop=True)
        index = _regular_index(item, ts, freq, cols.timestamp, grid)
        g = g.set_index(cols.timestamp).reindex(index)

        def arr(names, g=g, n=len(index), dtype=np.float32):
            if not names:
                return np.zeros((n, 0), dtype)
            return g[names].to_numpy(dtype=dtype)

        target = arr(cols.targets, dtype=np.float64)  # float64: see tsdiff.encoding.target_scale
        if np.isnan(target).all():
            raise DataError(f"item {item!r}: every target value is missing (NaN)")
        if len(index) < min_length:
            raise DataError(
                f"item {item!r}: {len(index)} time steps, fewer than the {min_length} required"
            )
        first = g.iloc[0]
        out.append(
            Series(
                item_id=str(item),
                index=index,
                target=target,
                time_feat=calendar.features(index) if calendar else time_features(index, freq),
                past_cov=arr(cols.past_covariates),
                future_cov=arr(cols.future_covariates),
                static_real=np.asarray([first[c] for c in cols.static_real], np.float32),
                static_cat=_codes(item, first, cols.static_cat, categories),
            )
        )
    return out


def category_vocab(df: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """The categories of each static categorical column, as sorted strings (code = position)."""
    vocab = {}
    for c in columns:
        if c not in df.columns:
            raise DataError(
                f"unknown column {c!r} (static categorical); the frame has {list(df.columns)}"
            )
        values = df[c].dropna().astype(str).unique().tolist()
        vocab[c] = sorted(values)
    return vocab


def _codes(item, row, columns: list[str], categories: dict[str, list[str]] | None) -> np.ndarray:
    """Integer codes [Sc] of an item's static categories; unseen values are an error."""
    codes = []
    for c in columns:
        known = (categories or {}).get(c, [])
        value = row[c]
        if pd.isna(value):
            raise DataError(f"item {item!r}: static categorical column {c!r} is missing")
        if str(value) not in known:
            raise DataError(
                f"item {item!r}: column {c!r} has category {str(value)!r}, which was not seen in "
                f"training (known: {known[:10]}{' ...' if len(known) > 10 else ''})"
            )
        codes.append(known.index(str(value)))
    return np.asarray(codes, np.int64)
