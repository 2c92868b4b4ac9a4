"""Forecaster: shapes, DataFrame helpers, backtest fields, save / load round trip."""

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff import Forecast, Forecaster
from tsdiff.data.frames import Columns, DataError
from tsdiff.train import holdout

H, L = 4, 16


@pytest.fixture(scope="module")
def data():
    t = np.arange(72)
    rows = []
    for k, item in enumerate(["a", "b", "c"]):
        ts = pd.date_range("2022-03-01", periods=len(t), freq="h")
        rows.append(
            pd.DataFrame(
                {"item_id": item, "timestamp": ts, "x": np.sin(t / 4) + k, "w": t * 0.1 + k}
            )
        )
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def fitted(data):
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    f = Forecaster(
        prediction_length=H,
        context_length=L,
        freq="h",
        patch_size=4,
        n_bins=32,
        d_model=32,
        n_layers=1,
        n_heads=2,
        batch_size=8,
        max_steps=3,
        progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f.fit(data, target=["x", "w"])


def test_predict_shape_and_start(fitted, data):
    fc = fitted.predict(data, num_samples=6, seed=1)
    assert isinstance(fc, Forecast)
    assert fc.samples.shape == (3, 6, H, 2)  # [items, samples, horizon, channels]
    assert fc.item_ids == ["a", "b", "c"]
    assert fc.starts[0] == data["timestamp"].max() + pd.Timedelta(hours=1)
    assert fc.mean().shape == fc.quantile(0.9).shape == (3, H, 2)
    assert np.isfinite(fc.samples).all()


def test_same_seed_same_samples(fitted, data):
    a = fitted.predict(data, num_samples=5, seed=7).samples
    b = fitted.predict(data, num_samples=5, seed=7).samples
    c = fitted.predict(data, num_samples=5, seed=8).samples
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_to_dataframe_columns(fitted, data):
    fc = fitted.predict(data, num_samples=5)
    df = fc.to_dataframe(quantiles=(0.1, 0.5, 0.9))
    assert list(df.columns) == [
        "item_id",
        "timestamp",
        "x_mean",
        "x_q0.1",
        "x_q0.5",
        "x_q0.9",
        "w_mean",
        "w_q0.1",
        "w_q0.5",
        "w_q0.9",
    ]
    assert len(df) == 3 * H
    paths = fc.samples_dataframe()
    assert list(paths.columns) == ["item_id", "sample", "timestamp", "x", "w"]
    assert len(paths) == 3 * 5 * H


def test_backtest_fields(fitted, data):
    bt = fitted.backtest(data, windows=2, num_samples=4)
    assert bt["samples"].shape == (6, 4, H, 2)
    assert bt["y"].shape == bt["observed"].shape == (6, H, 2)
    assert len(bt["insample"]) == len(bt["items"]) == len(bt["origins"]) == 6
    last = data[data.item_id == "a"]
    np.testing.assert_allclose(bt["y"][1, :, 0], last["x"].to_numpy()[-H:], rtol=1e-6)


def test_save_load_round_trip(fitted, data, tmp_path):
    path = fitted.save(tmp_path / "ckpt")
    g = Forecaster.load(path)
    assert g.config == fitted.config and g.temperature == fitted.temperature
    a = fitted.predict(data, num_samples=6, seed=3).samples
    b = g.predict(data, num_samples=6, seed=3).samples
    np.testing.assert_array_equal(a, b)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a tsdiff checkpoint"):
        Forecaster.load(tmp_path)
    with pytest.raises(RuntimeError, match="not fitted"):
        Forecaster(prediction_length=2, context_length=4).predict(pd.DataFrame())


def test_time_budget_ends_the_learning_rate_decay(data):
    """A run stopped by max_time_s long before max_steps still finishes its WSD decay."""
    torch.set_num_threads(1)
    f = Forecaster(
        prediction_length=H, context_length=L, freq="h", patch_size=4, n_bins=32, d_model=32,
        n_layers=1, n_heads=2, batch_size=8, lr=1e-3, max_steps=100_000, max_time_s=3.0,
        progress=False, calibrate=False,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f.fit(data, target=["x", "w"])
    assert 0 < f.history["steps"] < 100_000
    assert f.history["final_lr"] < 0.25e-3  # min ratio 0.05; without the time rule it stays 1e-3


def test_dropout_reaches_the_denoiser_and_survives_save_load(data, tmp_path):
    torch.set_num_threads(1)
    with pytest.raises(ValueError, match="dropout: expected a number in \\[0, 1\\)"):
        Forecaster(prediction_length=H, context_length=L, dropout=1.5)
    f = Forecaster(
        prediction_length=H, context_length=L, freq="h", patch_size=4, n_bins=32, d_model=32,
        n_layers=1, n_heads=2, batch_size=8, max_steps=2, dropout=0.2, progress=False,
        calibrate=False,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f.fit(data, target="x")
    drops = [m.p for m in f.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.2]  # one block, one residual dropout module
    a = f.predict(data, num_samples=4, seed=0).samples  # sampling runs in eval mode
    np.testing.assert_array_equal(a, f.predict(data, num_samples=4, seed=0).samples)
    g = Forecaster.load(f.save(tmp_path / "ckpt"))
    np.testing.assert_array_equal(a, g.predict(data, num_samples=4, seed=0).samples)


def test_spread_calibration_keeps_means_and_survives_save_load(data, tmp_path):
    """calibration="spread": temperature stays 1, a spread factor is fitted on validation
    windows, and predictions are the raw paths widened around their own mean."""
    torch.set_num_threads(1)
    with pytest.raises(ValueError, match="calibration: expected one of"):
        Forecaster(prediction_length=H, context_length=L, calibration="quantile")
    f = Forecaster(
        prediction_length=H, context_length=L, freq="h", patch_size=4, n_bins=32, d_model=32,
        n_layers=1, n_heads=2, batch_size=8, max_steps=3, progress=False, calibration="spread",
        domain="real",  # unbounded: exactly centre-preserving (a domain censors: test_domain.py)
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f.fit(data, target=["x", "w"])
    assert f.temperature == 1.0 and "calibration" not in f.history
    scores = f.history["spread_calibration"]  # {str(lambda): validation CRPS}
    assert str(f.spread) == min(scores, key=scores.get) and len(scores) >= 10
    f.spread = 1.7  # a value far from 1 so the check below cannot pass by accident
    raw = f.predict(data, num_samples=50, seed=2, spread=1.0).samples
    cal = f.predict(data, num_samples=50, seed=2).samples
    np.testing.assert_allclose(cal.mean(1), raw.mean(1), atol=1e-4)
    np.testing.assert_allclose(cal.std(1), 1.7 * raw.std(1), rtol=1e-4, atol=1e-6)
    g = Forecaster.load(f.save(tmp_path / "ckpt"))
    assert g.spread == 1.7 and g.config.calibration == "spread"
    np.testing.assert_array_equal(g.predict(data, num_samples=50, seed=2).samples, cal)
    g.recalibrate(data, "temperature")  # a checkpoint refitted the other way on the same windows
    assert g.config.calibration == "temperature" and g.spread == 1.0
    assert "spread_calibration" not in g.history and "calibration" in g.history
    with pytest.raises(DataError, match="long enough to hold out validation windows"):
        g.recalibrate(data[data.timestamp < data.timestamp.min() + pd.Timedelta(hours=2 * H)])
    # a temperature belongs to its sampler: refitted for one step, the setting is kept with it
    g.recalibrate(data, steps=1, order="margin")
    assert (g.config.steps, g.config.order) == (1, "margin")
    assert g.sampler_options()["steps"] == 1 and g.predict(data, num_samples=4).nfe == 1
    assert str(g.temperature) == min(g.history["calibration"], key=g.history["calibration"].get)
    with pytest.raises(TypeError, match="unknown sampler setting.*'commit'"):
        g.recalibrate(data, commit="soft")


def test_validation_windows_are_the_last_horizons_and_capped_per_series(data):
    """fit() holds out each series' last horizons for calibration: ceil(32 / items) of them, at
    most ``validation_per_series`` and at most ``validation_fraction`` of the series (default a
    quarter: no series loses half its length); training keeps everything before them, and a
    series too short to spare one horizon stays whole in training."""
    one = data[data.item_id == "a"]  # one item of 72 steps: ceil(32 / 1) = 32 wanted
    # (cap, fraction) -> windows: the per-series cap, or the fraction's whole horizons
    for cap, frac, n_val in ((7, 0.5, 7), (3, 0.5, 3), (20, 0.5, 9), (20, 0.25, 4)):
        f = Forecaster(
            prediction_length=H, context_length=L, freq="h", validation_per_series=cap,
            validation_fraction=frac,
        )  # fmt: skip
        f.columns = Columns(targets=["x"])
        (series,) = f._series(one)
        (train,), val = holdout([series], f.config)
        assert len(val) == n_val
        assert len(train) == len(series) - n_val * H
        if val:  # the first validation window is the series' last horizon
            np.testing.assert_array_equal(val[0]["fut"][:, 0], series.target[-H:, 0])
    short = Forecaster(prediction_length=H, context_length=L, freq="h")
    short.columns = Columns(targets=["x"])
    (series,) = short._series(one.iloc[:15])  # a quarter of 15 steps is less than H = 4
    (train,), val = holdout([series], short.config)
    assert not val and len(train) == 15
    three = Forecaster(prediction_length=H, context_length=L, freq="h")
    three.columns = Columns(targets=["x"])
    _, val = holdout(three._series(data), three.config)
    assert len(val) == 3 * 4  # ceil(32 / 3) = 11 per item, capped at a quarter of 72 steps
    with pytest.raises(ValueError, match="validation_per_series"):
        Forecaster(prediction_length=H, context_length=L, validation_per_series=0)
    with pytest.raises(ValueError, match="validation_fraction"):
        Forecaster(prediction_length=H, context_length=L, validation_fraction=0.6)


def test_a_fit_without_progress_prints_nothing_of_lightnings(data, capfd):
    """progress=False: no GPU/TPU lines, no tips, no warning about the unused validation_step;
    the log levels are restored afterwards."""
    torch.set_num_threads(1)
    before = logging.getLogger("lightning.pytorch").level
    f = Forecaster(
        prediction_length=H, context_length=L, freq="h", patch_size=4, n_bins=32, d_model=32,
        n_layers=1, n_heads=2, batch_size=8, max_steps=2, progress=False, calibrate=False,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f.fit(data, target=["x", "w"])
    out, err = capfd.readouterr()
    assert "available" not in out + err and "Tip" not in out + err, (out, err)
    assert not [str(w.message) for w in caught if "validation_step" in str(w.message)]
    assert logging.getLogger("lightning.pytorch").level == before
