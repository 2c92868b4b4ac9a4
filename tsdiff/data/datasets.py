"""Embedded real data: hourly TMY3 weather for Greensboro, NC (NREL, via pvlib; BSD-3).

The gzipped CSV ships inside the package (``tsdiff/data/embedded``), so it loads offline and
without pvlib. See ``embedded/README.md`` for attribution and ``embedded/build_tmy3.py`` for how
it was made.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from tsdiff.data.protocol import Protocol, daily_origins

TMY3_CHANNELS: tuple[str, ...] = (
    "ghi",
    "dni",
    "dhi",
    "temp_air",
    "temp_dew",
    "relative_humidity",
    "pressure",
    "wind_speed",
    "wind_direction",
    "precipitable_water",
)
TMY3_ITEM_ID = "greensboro"
TMY3_FILE = "tmy3_greensboro.csv.gz"


def load_tmy3(long: bool = True) -> pd.DataFrame:
    """Load the embedded TMY3 Greensboro year: hourly, 8760 rows, 10 channels, no gaps.

    Timestamps are tz-naive local standard time (UTC-5) and label the START of each hour,
    2001-01-01 00:00 ... 2001-12-31 23:00 (TMY3 itself labels hour ends 01:00 ... 24:00; the
    build script relabels in file order, so the index is regular and free of duplicates).

    Args:
        long: ``True`` (default) gives the forecaster's long format: columns ``item_id`` (the
            constant ``"greensboro"``), ``timestamp`` and one float column per channel, one row
            per (item, timestamp). ``False`` gives the wide frame indexed by a ``DatetimeIndex``
            with ``freq="h"`` and the channel columns only.
    Returns:
        ``[8760, 12]`` (long) or ``[8760, 10]`` (wide) DataFrame.
    """
    ref = resources.files("tsdiff.data").joinpath("embedded", TMY3_FILE)
    with resources.as_file(ref) as path:
        df = pd.read_csv(path, compression="gzip", parse_dates=["timestamp"])
    df = df.sort_values("timestamp").drop_duplicates("timestamp").reset_index(drop=True)
    df[list(TMY3_CHANNELS)] = df[list(TMY3_CHANNELS)].astype("float64")
    expected = pd.date_range(df["timestamp"].iloc[0], periods=len(df), freq="h")
    if not (df["timestamp"].to_numpy() == expected.to_numpy()).all():
        raise ValueError("embedded TMY3 index is not regular hourly; rebuild with build_tmy3.py")
    if not long:
        return df.set_index(pd.DatetimeIndex(df["timestamp"], freq="h"))[list(TMY3_CHANNELS)]
    df.insert(0, "item_id", TMY3_ITEM_ID)
    return df


def load_tmy3_benchmark(channels=None) -> tuple[pd.DataFrame, Protocol]:
    """Embedded TMY3 Greensboro (hourly, 10 channels or ``channels``) and its backtest protocol:
    H 24, context 168, season 24, 28 daily origins at midnight 2001-12-04 ... 2001-12-31."""
    cols = tuple(channels) if channels else TMY3_CHANNELS
    df = load_tmy3()[["item_id", "timestamp", *cols]]
    proto = Protocol(
        "tmy3", "h", 24, 168, 24, cols, test_origins=daily_origins("2001-12-04", "2001-12-31")
    )
    return df, proto
