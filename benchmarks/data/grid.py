"""The suite's protocol rule and the cleaning steps that put a raw table on a regular grid.

Protocol (GIFT-Eval's conventions), decided by the frequency label of a set's grid:

- horizon ``H``: yearly 6, quarterly 8, monthly 12, weekly 8, daily 30, hourly and sub-hourly 48
  (:data:`HORIZONS`); ``season_length``: yearly 1, quarterly 4, monthly 12, weekly 1, daily 7,
  sub-daily the number of steps in a day (gluonts' ``get_seasonality``);
  ``context_length``: a suggestion for peers only (:data:`CONTEXTS`).
- test windows: the last ``K`` non-overlapping windows of each series (:func:`count_test_windows`),
  or shared origins where a set names them (elecdemand, calls).
- a series is kept when it has at least ``H + min_history`` points after trimming its leading and
  trailing all-missing rows, ``min_history = max(H, season_length + 1)`` (:func:`min_history`);
  the others are dropped and counted.
- a series longer than :data:`MAX_STEPS` keeps its last ``MAX_STEPS`` steps (a 2-core machine must
  run every model on it).

Frames are long: ``item_id``, ``timestamp``, target columns, covariate columns.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from tsdiff.data.protocol import Protocol, window_splits

FREQ_LABELS = ("yearly", "quarterly", "monthly", "weekly", "daily", "hourly", "sub-hourly")
HORIZONS = {
    "yearly": 6,
    "quarterly": 8,
    "monthly": 12,
    "weekly": 8,
    "daily": 30,
    "hourly": 48,
    "sub-hourly": 48,
}
CONTEXTS = {
    "yearly": 12,
    "quarterly": 16,
    "monthly": 36,
    "weekly": 52,
    "daily": 90,
    "hourly": 336,
    "sub-hourly": 336,
}
MIN_TEST_WINDOWS = 20
MAX_STEPS = 20_000
_SEASONS = {"yearly": 1, "quarterly": 4, "monthly": 12, "weekly": 1, "daily": 7}


def freq_label(freq: str) -> str:
    """``yearly`` ... ``sub-hourly`` for a pandas frequency alias (``"YS"``, ``"30min"``...)."""
    off = to_offset(freq)
    name = off.name.split("-")[0].upper()
    if name in ("Y", "YS", "YE", "A", "AS", "BY", "BYS"):
        return "yearly"
    if name in ("Q", "QS", "QE", "BQ", "BQS"):
        return "quarterly"
    if name in ("M", "MS", "ME", "BM", "BMS"):
        return "monthly"
    if name == "W":
        return "weekly"
    step = pd.Timedelta(off)
    if step == pd.Timedelta("1D"):
        return "daily"
    if step == pd.Timedelta("1h"):
        return "hourly"
    if step < pd.Timedelta("1h") and pd.Timedelta("1D") % step == pd.Timedelta(0):
        return "sub-hourly"
    raise ValueError(f"freq {freq!r}: expected yearly, quarterly, monthly, weekly, daily, "
                     "hourly or a divisor of an hour")  # fmt: skip


def season_length(freq: str) -> int:
    """Seasonal period of a grid: 1, 4, 12, 1, 7 for yearly ... daily; steps per day below."""
    label = freq_label(freq)
    if label in _SEASONS:
        return _SEASONS[label]
    return int(pd.Timedelta("1D") / pd.Timedelta(to_offset(freq)))


def min_history(freq: str) -> int:
    """Training points a kept series has at least before its first test window."""
    return max(HORIZONS[freq_label(freq)], season_length(freq) + 1)


def count_test_windows(lengths, horizon: int, min_hist: int, target: int = MIN_TEST_WINDOWS) -> int:
    """The number ``K`` of test windows taken from the end of every series of a set.

    ``K = ceil(target / n_series)`` (so the set has at least ``target`` windows), lowered to what
    the shortest series allows while it keeps ``max(min_hist, ceil(length / 2))`` points for
    training (the test part never takes more than half a series), and at least 1.

    Args:
        lengths: the kept series' lengths (each at least ``horizon + min_hist``).
    """
    lengths = np.asarray(list(lengths), dtype=int)
    if lengths.size == 0:
        raise ValueError("no series left to choose test windows for")
    want = math.ceil(target / lengths.size)
    keep = np.maximum(min_hist, -(-lengths // 2))
    room = int(((lengths - keep) // horizon).min())
    return max(1, min(want, room))


def regular_grid(df: pd.DataFrame, freq: str, agg: dict[str, str] | None = None) -> pd.DataFrame:
    """Put each item on the full regular grid from its first to its last timestamp.

    Duplicate timestamps of an item become one row (``agg``: column -> ``"first"``/``"mean"``/...,
    default ``"first"`` for every column); grid steps with no row get NaN in every column.
    Timestamps must already sit on the grid (use :func:`resample_irregular` otherwise).
    """
    cols = [c for c in df.columns if c not in ("item_id", "timestamp")]
    how = {c: "first" for c in cols} | dict(agg or {})
    parts = []
    for item_id, g in df.groupby("item_id", sort=False):
        g = g.groupby("timestamp", sort=True).agg(how)
        grid = pd.date_range(g.index[0], g.index[-1], freq=freq)
        off_grid = g.index.difference(grid)
        if len(off_grid):
            raise ValueError(f"item {item_id}: timestamp {off_grid[0]} is off the {freq} grid")
        g = g.reindex(grid).rename_axis("timestamp").reset_index()
        g.insert(0, "item_id", item_id)
        parts.append(g)
    return pd.concat(parts, ignore_index=True)


def resample_irregular(
    df: pd.DataFrame, freq: str, round_to: str | None = None, agg: str = "mean"
) -> pd.DataFrame:
    """Irregular timestamps to a regular grid: each reading is first rounded to the nearest
    ``round_to`` (when given), then the readings of a grid step ``[t, t + freq)`` are aggregated
    with ``agg`` and labelled ``t``; steps with no reading are NaN."""
    df = df.copy()
    ts = df["timestamp"]
    if round_to is not None:
        ts = ts.dt.round(round_to)
    df["timestamp"] = ts.dt.floor(freq)
    cols = [c for c in df.columns if c not in ("item_id", "timestamp")]
    out = df.groupby(["item_id", "timestamp"], sort=False)[cols].agg(agg).reset_index()
    return regular_grid(out.sort_values(["item_id", "timestamp"]), freq)


def drop_before_long_gap(df: pd.DataFrame, targets, max_gap: int) -> pd.DataFrame:
    """Per item, drop the rows up to the end of its last run of more than ``max_gap`` grid steps
    whose targets are all missing (the data after a long outage is what is forecast)."""
    parts = []
    for _, g in df.groupby("item_id", sort=False):
        missing = g[list(targets)].isna().all(axis=1).to_numpy()
        start, run = 0, 0
        for i, m in enumerate(missing):
            run = run + 1 if m else 0
            if run > max_gap:
                start = i + 1
        parts.append(g.iloc[start:])
    return pd.concat(parts, ignore_index=True)


def fill_covariates(df: pd.DataFrame, cols) -> pd.DataFrame:
    """Covariates without gaps: per item, linear interpolation over the grid, then the nearest
    value at the ends (models need every covariate value; targets keep their NaNs)."""
    cols = list(cols)
    if not cols:
        return df
    df = df.copy()
    filled = df.groupby("item_id", sort=False)[cols].transform(
        lambda s: s.interpolate(limit_direction="both")
    )
    df[cols] = filled
    return df


def trim_and_cap(df: pd.DataFrame, targets, max_steps: int = MAX_STEPS) -> pd.DataFrame:
    """Per item: keep the last ``max_steps`` rows, then drop the leading and trailing rows whose
    targets are all NaN (an item with no observed target is dropped)."""
    parts = []
    for _, g in df.groupby("item_id", sort=False):
        g = g.iloc[-max_steps:]
        ok = np.flatnonzero(g[list(targets)].notna().any(axis=1).to_numpy())
        if ok.size:
            parts.append(g.iloc[ok[0] : ok[-1] + 1])
    return pd.concat(parts, ignore_index=True)


def finish(
    name: str,
    df: pd.DataFrame,
    freq: str,
    targets,
    known=(),
    past=(),
    test_origins=(),
) -> tuple[pd.DataFrame, Protocol]:
    """Apply the suite's protocol to a long frame already on its regular grid.

    Trims and caps each series (:func:`trim_and_cap`), drops the series shorter than
    ``H + min_history`` (their count goes to ``df.attrs["dropped_series"]``), chooses the test
    windows (``test_origins`` as given, else :func:`count_test_windows` from each series' end) and
    checks the result: a regular grid per item, float columns, gap-free covariates and at least
    one observed target value in every test window.
    """
    targets, known, past = tuple(targets), tuple(known), tuple(past)
    label = freq_label(freq)
    h, hist = HORIZONS[label], min_history(freq)
    df = trim_and_cap(df[["item_id", "timestamp", *targets, *known, *past]], targets)
    df["item_id"] = df["item_id"].astype(str)
    lengths = df.groupby("item_id", sort=False).size()
    short = lengths.index[lengths < h + hist]
    df = df[~df["item_id"].isin(short)].reset_index(drop=True)
    lengths = lengths.drop(short)
    df = df.astype({c: "float64" for c in (*targets, *known, *past)})
    origins = tuple(pd.Timestamp(t) for t in test_origins)
    k = 0 if origins else count_test_windows(lengths.to_numpy(), h, hist)
    proto = Protocol(
        name, freq, h, CONTEXTS[label], season_length(freq), targets,
        test_origins=origins, n_test_windows=k, known_covariates=known, past_covariates=past,
    )  # fmt: skip
    check(df, proto)
    df.attrs["dropped_series"] = len(short)
    return df, proto


def check(df: pd.DataFrame, proto: Protocol) -> None:
    """Raise ``ValueError`` (one line) unless ``df`` fits the suite's contract for ``proto``."""
    for item_id, g in df.groupby("item_id", sort=False):
        ts = pd.DatetimeIndex(g["timestamp"])
        grid = pd.date_range(ts[0], periods=len(ts), freq=proto.freq)
        if not ts.equals(grid):
            raise ValueError(f"{proto.name}: item {item_id} is not on a regular {proto.freq} grid")
    cov = list(proto.covariate_columns)
    if cov and df[cov].isna().any().any():
        raise ValueError(f"{proto.name}: covariates {cov} have missing values")
    _, windows = window_splits(df, proto)
    for _, future in windows:
        if future[list(proto.target_columns)].isna().all().all():
            t0 = future["timestamp"].iloc[0]
            raise ValueError(f"{proto.name}: the test window at {t0} has no observed target")
