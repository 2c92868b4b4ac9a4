"""Covariates in the Forecaster: past-only, known-future, static real and categorical."""

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff import Forecaster
from tsdiff.data.frames import DataError


def _frame(items=("a", "b"), n=200, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k, item in enumerate(items):
        t = pd.date_range("2022-01-01", periods=n, freq="h")
        temp = 10 + 5 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(size=n)
        plan = rng.integers(0, 2, n).astype(float)
        rows.append(
            pd.DataFrame(
                {
                    "item_id": item,
                    "timestamp": t,
                    "load": 2 * temp + 3 * plan + rng.normal(size=n),
                    "temp": temp,
                    "plan": plan,
                    "size": 1.0 + k,
                    "region": ["north", "south"][k % 2],
                }
            )  # fmt: skip
        )
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def fitted():
    df = _frame()
    f = Forecaster(
        prediction_length=6, context_length=24, freq="h", patch_size=4, d_model=32, n_layers=1,
        n_heads=2, batch_size=16, max_steps=10, progress=False, calibrate=False,
        past_covariates=["temp"], future_covariates=["plan"], static_covariates=["size"],
        static_categorical=["region"],
    )  # fmt: skip
    f.fit(df, target="load")
    return f, df


def _future(df, f, item="a", steps=6):
    last = df[df.item_id == item].timestamp.max()
    ts = pd.date_range(last, periods=steps + 1, freq="h")[1:]
    return pd.DataFrame({"item_id": item, "timestamp": ts, "plan": 1.0})


def test_all_covariate_kinds_reach_the_model(fitted, tmp_path):
    f, df = fitted
    assert f.model.cfg.n_past_covariates == 1 and f.model.cfg.n_future_covariates == 1
    assert f.model.cfg.static_cardinalities == [2] and f.categories == {
        "region": ["north", "south"]
    }
    hist = df[df.item_id == "a"]
    fc = f.predict(hist, 5, future=_future(df, f))
    assert fc.samples.shape == (1, 5, 6, 1) and np.isfinite(fc.samples).all()
    f.save(tmp_path / "m")
    g = Forecaster.load(tmp_path / "m")
    np.testing.assert_array_equal(g.predict(hist, 5, future=_future(df, f)).samples, fc.samples)


def test_future_covariates_must_cover_the_horizon(fitted):
    f, df = fitted
    hist = df[df.item_id == "a"]
    with pytest.raises(DataError, match="future covariates"):
        f.predict(hist, 2)
    with pytest.raises(DataError, match="item 'a' lacks 2 of the 6"):
        f.predict(hist, 2, future=_future(df, f, steps=4))


def test_unseen_category_is_an_error(fitted):
    f, df = fitted
    hist = df[df.item_id == "a"].assign(region="west")
    with pytest.raises(DataError, match="'west'.*not seen in training"):
        f.predict(hist, 2, future=_future(df, f))


def test_missing_covariate_column_is_named(fitted):
    f, df = fitted
    with pytest.raises(DataError, match="temp"):
        f.predict(df[df.item_id == "a"].drop(columns=["temp"]), 2, future=_future(df, f))


@pytest.mark.parametrize("scaling", ["context", "global"])
def test_global_covariate_scaling_keeps_a_constant_plans_level(scaling, tmp_path):
    """Per-window (context) scaling maps every constant plan to the same input, so 'always off'
    and 'always on' cannot be told apart; global scaling (training mean / std, stored with the
    model) keeps their levels, so the forecasts differ."""
    df = _frame()
    f = Forecaster(
        prediction_length=6, context_length=24, freq="h", patch_size=4, d_model=32, n_layers=1,
        n_heads=2, batch_size=16, max_steps=3, progress=False, calibrate=False,
        future_covariates=["plan"], covariate_scaling=scaling,
    )  # fmt: skip
    f.fit(df[["item_id", "timestamp", "load", "plan"]], target="load")
    with torch.no_grad():  # make the covariate path matter in this barely trained model
        torch.nn.init.normal_(f.model.step_proj.weight, std=1.0)
        torch.nn.init.normal_(f.model.head.weight, std=0.5)
    hist = df[df.item_id == "a"].iloc[:100][["item_id", "timestamp", "load", "plan"]]
    steps = pd.date_range(hist.timestamp.iloc[-1], periods=7, freq="h")[1:]
    out = {}
    for level in (0.0, 1.0):
        h = hist.assign(plan=level)
        fut = pd.DataFrame({"item_id": "a", "timestamp": steps, "plan": level})
        out[level] = f.predict(h, num_samples=200, future=fut, seed=0).samples
    differ = not np.allclose(out[0.0], out[1.0])
    assert differ == (scaling == "global")
    if scaling == "global":
        stats = f.model.cfg.future_cov_stats[0]
        assert abs(stats[0] - df.plan.mean()) < 1e-6 and abs(stats[1] - df.plan.std(ddof=0)) < 1e-6
        f.save(tmp_path / "m")
        g = Forecaster.load(tmp_path / "m")
        h = hist.assign(plan=1.0)
        fut = pd.DataFrame({"item_id": "a", "timestamp": steps, "plan": 1.0})
        np.testing.assert_array_equal(g.predict(h, 200, future=fut, seed=0).samples, out[1.0])
