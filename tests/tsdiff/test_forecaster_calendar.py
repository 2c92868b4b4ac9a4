"""Forecaster: calendar features and seasonal lags are chosen at fit time from the history, saved
with the model, and predict and backtest build the same inputs."""

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff import Forecaster

H, L = 7, 28


def daily(n: int) -> pd.DataFrame:
    t = pd.date_range("2019-01-01", periods=n, freq="D")
    doy = t.dayofyear.to_numpy()
    y = 10 + np.sin(2 * np.pi * doy / 365.25) + 3.0 * ((t.month == 12) & (t.day == 25))
    y = y + 0.1 * np.random.default_rng(0).standard_normal(n)
    return pd.DataFrame({"item_id": "a", "timestamp": t, "y": y})


def fit(df: pd.DataFrame, **kw) -> Forecaster:
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    f = Forecaster(
        prediction_length=H, context_length=L, freq="D", patch_size=7, n_bins=32, d_model=16,
        n_layers=1, n_heads=2, batch_size=8, max_steps=2, calibrate=False, progress=False, **kw,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f.fit(df, target="y")


@pytest.fixture(scope="module")
def fitted():
    return fit(daily(800), holidays="US", seasonal_lags=True)  # lags are off by default


def test_two_years_of_daily_data_get_the_yearly_features_holidays_and_the_yearly_lag(fitted):
    cal = fitted.calendar
    assert cal.names == ("dow", "dom", "doy", "month") and cal.holidays == "US"
    assert fitted.lags == (364,)  # a year is longer than the 28-day context
    assert fitted.model.cfg.n_time_features == 2 * 4 + 3


def test_under_two_years_no_yearly_features_and_no_lags():
    f = fit(daily(300), seasonal_lags=True)
    assert f.calendar.names == ("dow", "dom") and f.lags == ()
    assert fit(daily(800), seasonal_lags=False).lags == ()


def test_a_loaded_model_uses_the_same_features_and_lags(fitted, tmp_path):
    df = daily(800)
    fitted.save(tmp_path / "m")
    loaded = Forecaster.load(tmp_path / "m")
    assert loaded.calendar == fitted.calendar and loaded.lags == fitted.lags
    a = fitted.predict(df, num_samples=5, seed=3).samples
    b = loaded.predict(df, num_samples=5, seed=3).samples
    np.testing.assert_array_equal(a, b)


def test_predict_at_an_origin_equals_the_backtest_window_there(fitted):
    df = daily(800)
    origin = pd.Timestamp("2020-12-20")  # the horizon holds Christmas; lags reach back a year
    bt = fitted.backtest(df, origins=[origin], num_samples=5, seed=1)
    fc = fitted.predict(df[df["timestamp"] < origin], num_samples=5, seed=1)
    np.testing.assert_allclose(fc.samples, bt["samples"], rtol=1e-6)
