"""Spread calibration for rollouts on windows where the recorded action was held."""

import numpy as np
import pandas as pd
import pytest

from tsdiff import Forecaster
from tsdiff.data.frames import DataError
from tsdiff.rollout_calibration import action_columns, held_origins, hold_from
from tsdiff.scenarios import rollout
from tsdiff.simulators import make_dataset, plan_frame


@pytest.fixture(scope="module")
def fitted():
    df, _ = make_dataset(n_buildings=3, n_hours=24 * 10, seed=3)
    f = Forecaster(
        prediction_length=6, context_length=24, freq="h", patch_size=4, d_model=32, n_layers=1,
        n_heads=2, batch_size=16, max_steps=10, progress=False, calibrate=False,
        future_covariates=["heating", "t_out"], domain="real",
    )  # fmt: skip
    return f.fit(df, target="indoor"), df


def test_hold_from_counts_the_steps_an_action_keeps_its_origin_value():
    u = np.array([[0.0], [0.5], [0.5], [0.5], [1.0], [1.0]])
    assert hold_from(u, 1, 6) == 3
    assert hold_from(u, 1, 2) == 2  # at most the horizon
    assert hold_from(u, 4, 6) == 2 and hold_from(u, 6, 6) == 0


def test_held_origins_take_the_longest_holds_without_overlap(fitted):
    f, df = fitted
    s = f._series(df)[0]
    picked = held_origins(s, [0], 6, 0.25, 4)
    assert len(picked) == 4
    ends = sorted(e for e, _ in picked)
    assert all(b - a >= 6 for a, b in zip(ends, ends[1:], strict=False))
    assert all(e >= len(s) - int(0.25 * len(s)) for e in ends)
    tail = [hold_from(s.future_cov[:, [0]], e, 6) for e in range(len(s) - 60, len(s) - 5)]
    assert min(h for _, h in picked) >= np.median(tail)


def test_recalibrate_rollouts_fits_a_spread_on_held_windows_and_keeps_means(fitted):
    f, df = fitted
    assert action_columns(f) == ["heating"]  # t_out is a continuous driver
    f.recalibrate_rollouts(df, windows=9)
    info = f.history["rollout_calibration"]
    assert info["actions"] == ["heating"] and info["windows"] == 9
    assert info["mean_hold"] > info["policy_mean_hold"]  # held windows, not the policy's
    assert f.config.calibration == "spread" and f.spread > 0
    assert "spread_calibration" in f.history
    hist = df[df.item_id == "building_00"]
    steps = pd.date_range(hist.timestamp.iloc[-1], periods=7, freq="h")[1:]
    plans = {
        "off": plan_frame("building_00", steps, np.zeros(6), np.full(6, 3.0)),
        "on": plan_frame("building_00", steps, np.ones(6), np.full(6, 3.0)),
    }
    a = rollout(f, hist, plans, num_samples=20, seed=4)
    b = rollout(f, hist, plans, num_samples=20, seed=4, spread=1.0)
    np.testing.assert_allclose(a.mean(), b.mean(), atol=1e-4)  # centre-preserving


def test_unknown_action_columns_are_named(fitted):
    f, df = fitted
    with pytest.raises(DataError, match=r"actions: \['valve'\] are not future covariates"):
        f.recalibrate_rollouts(df, actions=["valve"])
