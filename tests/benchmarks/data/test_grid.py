"""The suite's protocol rule and cleaning steps (benchmarks.data.grid) on small synthetic frames."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.data.grid import (
    HORIZONS,
    count_test_windows,
    drop_before_long_gap,
    fill_covariates,
    finish,
    freq_label,
    min_history,
    regular_grid,
    resample_irregular,
    season_length,
)


def _item(item_id, start, n, freq, **cols):
    df = pd.DataFrame({"item_id": item_id, "timestamp": pd.date_range(start, periods=n, freq=freq)})
    for c, v in cols.items():
        df[c] = np.asarray(v, dtype=float)
    return df


@pytest.mark.parametrize(
    "freq,label,h,season",
    [("YS", "yearly", 6, 1), ("QS", "quarterly", 8, 4), ("MS", "monthly", 12, 12),
     ("W-SAT", "weekly", 8, 1), ("D", "daily", 30, 7), ("h", "hourly", 48, 24),
     ("30min", "sub-hourly", 48, 48), ("10min", "sub-hourly", 48, 144),
     ("5min", "sub-hourly", 48, 288)],
)  # fmt: skip
def test_horizon_and_season_follow_the_frequency(freq, label, h, season):
    assert freq_label(freq) == label and HORIZONS[label] == h and season_length(freq) == season


def test_an_unsupported_frequency_is_one_clear_error():
    with pytest.raises(ValueError, match="freq '7min'"):
        freq_label("7min")


def test_window_rule_gives_a_set_20_windows_where_lengths_allow():
    assert count_test_windows([100] * 181, 6, 6) == 1  # many series: one window each
    assert count_test_windows([76] * 8, 8, 8) == 3  # 8 series: 3 each, 24 in all
    assert count_test_windows([8760], 48, 48) == 20  # one long series: 20 from its end
    # one short series: the test part never takes more than half of it
    assert count_test_windows([365], 30, 30) == 6
    # the shortest series limits every series' count, but each keeps at least one window
    assert count_test_windows([60, 1000], 30, 30) == 1
    with pytest.raises(ValueError, match="no series"):
        count_test_windows([], 30, 30)


def test_regular_grid_merges_duplicate_timestamps_and_leaves_gaps_missing():
    raw = pd.DataFrame({
        "item_id": "a",
        "timestamp": pd.to_datetime(["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 01:00",
                                     "2020-01-01 04:00"]),
        "y": [1.0, 2.0, 2.0, 5.0],
        "temp": [10.0, 11.0, 13.0, 14.0],
    })  # fmt: skip
    out = regular_grid(raw, "h", {"temp": "mean"})
    assert list(out["timestamp"]) == list(pd.date_range("2020-01-01", periods=5, freq="h"))
    np.testing.assert_array_equal(out["y"], [1, 2, np.nan, np.nan, 5])
    np.testing.assert_array_equal(out["temp"], [10, 12, np.nan, np.nan, 14])
    off = raw.iloc[[0, 3]].assign(
        timestamp=pd.to_datetime(["2020-01-01 00:00", "2020-01-01 01:10"])
    )
    with pytest.raises(ValueError, match="item a: timestamp 2020-01-01 01:10:00 is off the h grid"):
        regular_grid(off, "h")


def test_irregular_readings_are_rounded_then_averaged_per_hour():
    raw = pd.DataFrame({
        "item_id": "park",
        "timestamp": pd.to_datetime(["2016-10-04 07:59:42", "2016-10-04 08:26:10",
                                     "2016-10-04 08:59:50", "2016-10-04 11:30:20"]),
        "rate": [0.1, 0.3, 0.5, 0.7],
    })  # fmt: skip
    out = resample_irregular(raw, "h", round_to="30min")
    # 07:59:42 -> 08:00 and 08:26 -> 08:30 share hour 8; 08:59:50 -> 09:00; no reading at 10:00
    assert list(out["timestamp"].dt.hour) == [8, 9, 10, 11]
    np.testing.assert_allclose(out["rate"], [0.2, 0.5, np.nan, 0.7])


def test_rows_before_a_long_outage_are_dropped():
    y = [1, 2, np.nan, np.nan, np.nan, 3, np.nan, 4]
    out = drop_before_long_gap(_item("a", "2020-01-01", 8, "h", y=y), ["y"], max_gap=2)
    np.testing.assert_array_equal(out["y"], [3, np.nan, 4])  # the 1-step gap stays as NaN
    short = drop_before_long_gap(_item("a", "2020-01-01", 8, "h", y=y), ["y"], max_gap=3)
    assert len(short) == 8


def test_covariate_gaps_are_interpolated_per_item():
    df = pd.concat([_item("a", "2020-01-01", 4, "h", x=[np.nan, 1, np.nan, 3]),
                    _item("b", "2020-01-01", 3, "h", x=[5, np.nan, np.nan])])  # fmt: skip
    np.testing.assert_allclose(fill_covariates(df, ["x"])["x"], [1, 1, 2, 3, 5, 5, 5])


def test_finish_trims_drops_short_series_and_builds_the_protocol():
    long_y = np.r_[np.nan, np.nan, np.arange(200.0), np.nan]
    df = pd.concat([_item("long", "2000-01-01", 203, "MS", y=long_y),
                    _item("short", "2000-01-01", 20, "MS", y=np.arange(20.0))])  # fmt: skip
    out, proto = finish("toy", df, "MS", ("y",))
    assert out.attrs["dropped_series"] == 1 and out["item_id"].unique().tolist() == ["long"]
    assert len(out) == 200 and out["y"].notna().all()  # leading/trailing NaNs trimmed
    assert min_history("MS") == 13 and proto.prediction_length == 12 and proto.season_length == 12
    assert proto.n_test_windows == 8  # 20 wanted, half of 200 points leaves room for 8


def test_finish_rejects_a_test_window_without_observations():
    y = np.r_[np.arange(100.0), np.full(48, np.nan), [1.0]]
    with pytest.raises(ValueError, match="test window at .* has no observed target"):
        finish("gappy", _item("a", "2020-01-01", 149, "h", y=y), "h", ("y",), test_origins=[
            pd.Timestamp("2020-01-01") + pd.Timedelta(hours=100)])  # fmt: skip
