"""Scenario rollouts: shapes, common random numbers, long horizons, and bad plans."""

import numpy as np
import pandas as pd
import pytest

from tsdiff import Forecaster
from tsdiff.cli import main as cli
from tsdiff.data.frames import DataError
from tsdiff.scenarios import rollout
from tsdiff.simulators import Building, make_dataset, plan_frame, random_policy


@pytest.fixture(scope="module")
def fitted():
    df, building = make_dataset(n_buildings=3, n_hours=24 * 12, seed=0)
    f = Forecaster(
        prediction_length=6, context_length=24, freq="h", patch_size=4, d_model=32, n_layers=1,
        n_heads=2, batch_size=16, max_steps=15, progress=False, calibrate=False,
        future_covariates=["heating", "t_out"],
        domain="real",  # unbounded: exactly centre-preserving (a domain censors: test_domain.py)
    )  # fmt: skip
    f.fit(df, target="indoor")
    return f, df, building


def _plans(df, item="building_00", origin=200, horizon=6):
    g = df[df.item_id == item].reset_index(drop=True)
    hist = g.iloc[:origin]
    steps = pd.DatetimeIndex(g.timestamp.iloc[origin : origin + horizon])
    if len(steps) < horizon:
        steps = pd.date_range(hist.timestamp.iloc[-1], periods=horizon + 1, freq="h")[1:]
    t_out = np.full(horizon, 3.0)
    plans = {
        "off": plan_frame(item, steps, np.zeros(horizon), t_out),
        "on": plan_frame(item, steps, np.ones(horizon), t_out),
        "off_again": plan_frame(item, steps, np.zeros(horizon), t_out),
    }
    return hist, plans


def test_rollout_shapes_and_common_random_numbers(fitted):
    f, df, _ = fitted
    hist, plans = _plans(df)
    sc = rollout(f, hist, plans, num_samples=8, seed=3)
    x = sc.samples["building_00"]
    assert x.shape == (3, 8, 6, 1)
    # identical plans under common random numbers give identical paths
    np.testing.assert_array_equal(x[0], x[2])
    assert not np.array_equal(x[0], x[1])
    eff = sc.effect("on", "off")
    assert eff["mean"].shape == (6, 1) and (eff["low"] <= eff["high"]).all()
    table = sc.summary(reference="off")
    assert list(table.plan) == ["off", "on", "off_again"]
    assert table.loc[2, "effect"] == 0.0
    assert 0.0 <= sc.prob_exceed(15.0)[0] <= 1.0


def test_long_horizons_append_blocks(fitted):
    f, df, _ = fitted
    hist, plans = _plans(df, horizon=15)  # 2.5 x the trained horizon
    sc = rollout(f, hist, {"on": plans["on"]}, horizon=15, num_samples=4)
    x = sc.samples["building_00"]
    assert x.shape == (1, 4, 15, 1) and np.isfinite(x).all()
    assert sc.nfe == 3 * 2  # three blocks of ceil(6 / 4) = 2 steps


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda p: p.iloc[:3], "lacks 3 of the 6"),
        (lambda p: p.assign(heating=np.nan), "NaN"),
        (lambda p: p.drop(columns=["t_out"]), "unknown column"),
        (lambda p: p.assign(item_id="nowhere"), "not in the history"),
    ],
)
def test_bad_plans_get_clear_errors(fitted, mutate, match):
    f, df, _ = fitted
    hist, plans = _plans(df)
    with pytest.raises(DataError, match=match):
        rollout(f, hist, {"bad": mutate(plans["on"])}, num_samples=2)


def test_simulator_truth_is_known():
    """The SYNTHETIC simulator's mean path is exact and its Monte-Carlo futures agree."""
    b = Building()
    rng = np.random.default_rng(0)
    t_out, u = np.full(12, 2.0), np.r_[np.ones(6), np.zeros(6)]
    mc = b.simulate(15.0, t_out, u, 20000, rng)
    np.testing.assert_allclose(mc.mean(0), b.mean_path(15.0, t_out, u), atol=0.03)
    assert set(np.unique(random_policy(200, rng))) <= {0.0, 0.25, 0.5, 0.75, 1.0}


def test_rollout_command(fitted, tmp_path, capsys):
    f, df, _ = fitted
    hist, plans = _plans(df)
    f.save(tmp_path / "ckpt")
    hist.to_csv(tmp_path / "hist.csv", index=False)
    pd.concat([p.assign(plan=k) for k, p in plans.items()]).to_csv(
        tmp_path / "plans.csv", index=False
    )
    args = [
        "rollout", "--ckpt", str(tmp_path / "ckpt"), "--history", str(tmp_path / "hist.csv"),
        "--plans", str(tmp_path / "plans.csv"), "--horizon", "6", "--num-samples", "4",
        "--output", str(tmp_path / "out.csv"), "--plots", str(tmp_path / "png"),
    ]  # fmt: skip
    assert cli(args) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 3 * 6 and "indoor_q0.9" in out.columns
    assert (tmp_path / "png" / "rollout_building_00.png").is_file()
    assert "effect" in capsys.readouterr().out
    assert cli([*args[:-2], "--reference", "nope"]) == 2
    assert "--reference" in capsys.readouterr().err


def test_spread_widens_each_plan_around_its_mean_and_keeps_effects(fitted):
    f, df, _ = fitted
    hist, plans = _plans(df, horizon=9)  # two blocks: the factor acts on the finished paths
    raw = rollout(f, hist, plans, horizon=9, num_samples=40, seed=1, spread=1.0)
    wide = rollout(f, hist, plans, horizon=9, num_samples=40, seed=1, spread=2.0)
    x, w = raw.samples["building_00"], wide.samples["building_00"]
    np.testing.assert_allclose(w.mean(1), x.mean(1), atol=1e-4)  # per plan: means kept
    np.testing.assert_allclose(w.std(1), 2.0 * x.std(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        wide.effect("on", "off")["mean"], raw.effect("on", "off")["mean"], atol=1e-4
    )
