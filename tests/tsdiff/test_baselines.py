"""tsdiff.baselines: seasonal naive (known answers) and ETS on the TMY3 backtest protocol."""

import dataclasses
import sys

import numpy as np
import pytest

from tsdiff.baselines import ets_samples, seasonal_naive, seasonal_naive_samples
from tsdiff.data.datasets import load_tmy3_benchmark
from tsdiff.data.protocol import window_splits


def test_seasonal_naive_repeats_the_last_season_and_fills_gaps():
    y = np.array([1.0, 2.0, 3.0, np.nan, 5.0, 6.0])
    np.testing.assert_array_equal(seasonal_naive(y, 5, 3), [3.0, 5.0, 6.0, 3.0, 5.0])  # 4 -> 3
    np.testing.assert_array_equal(seasonal_naive(y[:2], 3, 4), [2.0, 2.0, 2.0])  # naive
    out = seasonal_naive_samples([np.arange(6.0)[:, None]] * 2, 4, 2)
    assert out.shape == (2, 1, 4, 1) and out[0, 0, :, 0].tolist() == [4.0, 5.0, 4.0, 5.0]


def test_ets_paths_on_the_tmy3_protocol():
    pytest.importorskip("statsmodels")
    df, proto = load_tmy3_benchmark(["temp_air"])
    proto = dataclasses.replace(proto, test_origins=proto.test_origins[-2:])
    samples, fit_s, _ = ets_samples(df, proto, n_samples=20, quick=True)
    assert samples.shape == (2, 20, 24, 1) and np.isfinite(samples).all()
    assert samples.std(axis=1).mean() > 0 and fit_s > 0
    _, windows = window_splits(df, proto)
    context = windows[0][0]["temp_air"].to_numpy()
    assert abs(samples[0].mean() - context[-24:].mean()) < 3 * context.std()  # a sane level


def test_ets_without_statsmodels_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels.tsa.exponential_smoothing.ets", None)
    df, proto = load_tmy3_benchmark(["temp_air"])
    with pytest.raises(ImportError, match="ETS needs statsmodels"):
        ets_samples(df, proto, n_samples=2, quick=True)
