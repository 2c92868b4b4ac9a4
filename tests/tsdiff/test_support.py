"""Rollouts are checked against what the training data showed of each action (tsdiff.support)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from tsdiff import Forecaster
from tsdiff.scenarios import rollout
from tsdiff.simulators import make_dataset, plan_frame
from tsdiff.support import ExtrapolationWarning, UnsupportedPlanError, longest_hold


@pytest.fixture(scope="module")
def fitted():
    """A tiny rollout model (SYNTHETIC building) with an action column `valve` that is 0 in
    every training row."""
    df, _ = make_dataset(n_buildings=2, n_hours=24 * 10, seed=1)
    df = df.assign(valve=0.0)
    f = Forecaster(
        prediction_length=6, context_length=24, freq="h", patch_size=4, d_model=32, n_layers=1,
        n_heads=2, batch_size=16, max_steps=5, progress=False, calibrate=False,
        future_covariates=["heating", "t_out", "valve"],
    )  # fmt: skip
    f.fit(df, target="indoor")
    return f, df


def _plan(df, heating, valve=0.0, t_out=3.0, item="building_00"):
    hist = df[df.item_id == item]
    steps = pd.date_range(hist.timestamp.iloc[-1], periods=len(heating) + 1, freq="h")[1:]
    frame = plan_frame(item, steps, np.asarray(heating, float), np.full(len(heating), t_out))
    return frame.assign(valve=valve)


def test_longest_hold_counts_the_longest_run_of_one_value():
    assert longest_hold(np.array([0, 0, 1, 1, 1, 0.5, 1])) == 3
    assert longest_hold(np.array([2.0])) == 1
    assert longest_hold(np.array([1, np.nan, 1])) == 1


def test_fit_records_the_support_of_every_future_covariate(fitted):
    f, df = fitted
    sup = f.history["covariate_support"]
    assert sup["valve"] == {"low": 0.0, "high": 0.0, "max_hold": 240, "varied": False}
    assert sup["heating"]["low"] == 0.0 and sup["heating"]["high"] == 1.0
    assert sup["heating"]["varied"] and 2 <= sup["heating"]["max_hold"] < 240
    assert sup["t_out"]["varied"] and sup["t_out"]["max_hold"] is None  # a continuous driver


@pytest.mark.parametrize("value", [1.0, -1.0, 0.5])
def test_an_action_that_never_varied_in_training_is_refused_every_time(fitted, value):
    f, df = fitted
    hist = df[df.item_id == "building_00"]
    plans = {"base": _plan(df, [0.5] * 6), "open": _plan(df, [0.5] * 6, valve=value)}
    with pytest.raises(
        UnsupportedPlanError, match=r"'valve' never varied in the training data \(always 0\)"
    ):
        rollout(f, hist, plans, num_samples=4)


def test_plans_inside_the_support_are_not_marked(fitted):
    f, df = fitted
    hist = df[df.item_id == "building_00"]
    plans = {
        "low": _plan(df, [0.25, 0.25, 0.5, 0.5, 0.0, 0.0]),
        "high": _plan(df, [1.0] * 2 + [0.75] * 4),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        sc = rollout(f, hist, plans, num_samples=4)
    assert sc.extrapolated == {"low": [], "high": []}
    assert not sc.summary(reference="low")["extrapolated"].any()


def test_a_plan_outside_the_seen_range_warns_and_its_effect_is_marked(fitted):
    f, df = fitted
    hist = df[df.item_id == "building_00"]
    plans = {"base": _plan(df, [0.5] * 6), "boost": _plan(df, [1.5] * 3 + [0.5] * 3)}
    with pytest.warns(ExtrapolationWarning, match=r"'heating': values 0.5..1.5 asked, 0..1 seen"):
        sc = rollout(f, hist, plans, num_samples=4)
    table = sc.summary(reference="base").set_index("plan")
    assert table.loc["boost", "extrapolated"] and table.loc["base", "extrapolated"] == False  # noqa: E712
    assert sc.extrapolated["base"] == []


def test_a_plan_held_longer_than_any_run_in_training_warns(fitted):
    f, df = fitted
    hist = df[df.item_id == "building_00"]
    seen = f.history["covariate_support"]["heating"]["max_hold"]
    n = 6 * (seen // 6 + 1)  # a whole number of blocks, longer than any hold seen
    plans = {"off": _plan(df, [0.0] * n), "pulse": _plan(df, ([0.0, 1.0] * n)[:n])}
    with pytest.warns(ExtrapolationWarning, match=f"held for {n} steps asked, at most {seen}"):
        sc = rollout(f, hist, plans, horizon=n, num_samples=2)
    assert sc.extrapolated["off"] and not sc.extrapolated["pulse"]
