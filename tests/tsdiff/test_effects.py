"""Effect intervals with the model's own uncertainty: an ensemble over training seeds."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tsdiff import ForecasterConfig
from tsdiff.data.frames import DataError
from tsdiff.effects import (
    effect_intervals,
    fit_ensemble,
    member_frames,
    resample_items,
    rollout_ensemble,
)
from tsdiff.simulators import make_dataset, plan_frame

CONFIG = ForecasterConfig(
    prediction_length=6, context_length=24, freq="h", patch_size=4, d_model=32, n_layers=1,
    n_heads=2, batch_size=16, max_steps=8, progress=False, calibrate=False,
    future_covariates=["heating", "t_out"], domain="real",
)  # fmt: skip


@pytest.fixture(scope="module")
def ensemble():
    df, _ = make_dataset(n_buildings=2, n_hours=24 * 8, seed=2)
    return fit_ensemble(CONFIG, df, k=3, bootstrap=False, target="indoor"), df


def _plans(df, item="building_00", horizon=6):
    hist = df[df.item_id == item]
    steps = pd.date_range(hist.timestamp.iloc[-1], periods=horizon + 1, freq="h")[1:]
    t_out = np.full(horizon, 3.0)
    plans = {
        "off": plan_frame(item, steps, np.zeros(horizon), t_out),
        "on": plan_frame(item, steps, np.r_[np.ones(3), np.zeros(horizon - 3)], t_out),
    }
    return hist, plans


def _paths(offsets, S=200, seed=0):
    """per_path [2, K * S] of plans 'off' and 'on': 'on' = 'off' + offsets[k] + noise, with the
    member of every path; members differ by construction when the offsets do."""
    rng = np.random.default_rng(seed)
    K = len(offsets)
    off = rng.normal(10.0, 1.0, K * S)
    members = np.repeat(np.arange(K), S)
    on = off + np.asarray(offsets)[members] + rng.normal(0.0, 0.3, K * S)
    return np.stack([off, on]), members


def test_members_that_disagree_widen_the_interval_around_the_same_centre():
    per_path, members = _paths([0.0, 1.0, 2.0, 3.0])
    e = effect_intervals(per_path, 0, members)
    assert e["members_effect"].shape == (2, 4)
    np.testing.assert_allclose(e["members_effect"][1], [0, 1, 2, 3], atol=0.1)
    mc = e["high"][1] - e["low"][1]
    model = e["high_model"][1] - e["low_model"][1]
    assert e["low_model"][1] < e["effect"][1] < e["high_model"][1]
    np.testing.assert_allclose((e["low_model"] + e["high_model"]) / 2, e["effect"])
    assert model > 10 * mc  # MC error of 800 paths is tiny beside the members' spread
    # the interval reaches past the outer members' centre: t(3) * sd([0, 1, 2, 3]) = 2.75
    assert e["low_model"][1] < 0.0 and e["high_model"][1] > 3.0
    assert e["effect"][0] == e["low_model"][0] == e["high_model"][0] == 0.0


def test_members_that_agree_keep_the_monte_carlo_interval():
    per_path, members = _paths([1.0, 1.0, 1.0])
    # the members' differences are the same paths: no spread beyond Monte-Carlo error
    d = per_path[1, :200] - per_path[0, :200]
    per_path[1] = per_path[0] + np.tile(d, 3)
    e = effect_intervals(per_path, 0, members)
    np.testing.assert_allclose(e["low_model"], e["low"])
    np.testing.assert_allclose(e["high_model"], e["high"])


def test_one_model_has_no_model_interval():
    per_path, _ = _paths([1.0])
    assert "low_model" not in effect_intervals(per_path, 0)
    with pytest.raises(ValueError, match="at least 2 members"):
        effect_intervals(per_path, 0, np.zeros(200, int))


def test_fit_ensemble_trains_k_members_that_differ_only_in_their_seed(ensemble):
    members, _ = ensemble
    assert [m.config.seed for m in members] == [0, 1, 2]
    assert all(dataclasses.replace(m.config, seed=0) == members[0].config for m in members)
    w = [next(iter(m.model.parameters())).detach().numpy() for m in members]
    assert not np.allclose(w[0], w[1])
    with pytest.raises(ValueError, match="at least 2 distinct seeds"):
        fit_ensemble(CONFIG, None, k=1)


def test_rollout_ensemble_gives_k_effect_estimates_and_both_intervals(ensemble):
    members, df = ensemble
    hist, plans = _plans(df)
    sc = rollout_ensemble(members, hist, plans, num_samples=16, seed=1)
    x = sc.samples["building_00"]
    assert x.shape == (2, 3 * 16, 6, 1)
    assert list(sc.members) == [0] * 16 + [1] * 16 + [2] * 16
    e = effect_intervals(x[..., 0].mean(-1), 0, sc.members)
    assert e["members_effect"].shape == (2, 3)
    assert len(np.unique(np.round(e["members_effect"][1], 6))) == 3  # three estimates
    table = sc.summary(reference="off")
    row = table.set_index("plan").loc["on"]
    assert row.effect_low_model <= row.effect_low <= row.effect <= row.effect_high
    assert row.effect_high <= row.effect_high_model
    assert row.effect == pytest.approx(np.mean(e["members_effect"][1]), abs=1e-6)
    with pytest.raises(DataError, match="at least 2 fitted members"):
        rollout_ensemble(members[:1], hist, plans)


def test_bootstrap_members_train_on_resampled_items():
    df, _ = make_dataset(n_buildings=4, n_hours=24, seed=0)
    a, b = resample_items(df, 0), resample_items(df, 0)
    pd.testing.assert_frame_equal(a, b)  # the member's seed fixes its resample
    assert len(a) == len(df) and a.item_id.nunique() == 4
    base = a.item_id.str.split("~").str[0]
    assert set(base) <= set(df.item_id) and base.nunique() < 4  # with replacement: repeats
    for name, g in a.groupby("item_id"):
        orig = df[df.item_id == name.split("~")[0]].reset_index(drop=True)
        np.testing.assert_array_equal(g.indoor.to_numpy(), orig.indoor.to_numpy())
    with pytest.raises(DataError, match="at least 2 items"):
        resample_items(df[df.item_id == "building_00"], 0)


def test_members_after_the_first_train_on_a_resample_of_the_series_by_default():
    df, _ = make_dataset(n_buildings=4, n_hours=24, seed=0)
    frames = member_frames(df, [5, 6, 7])
    assert frames[0] is df  # member 0 sees every series once
    for seed, frame in zip([6, 7], frames[1:], strict=True):
        pd.testing.assert_frame_equal(frame, resample_items(df, seed))
    assert all(f is df for f in member_frames(df, [5, 6, 7], bootstrap=False))
    one = df[df.item_id == "building_00"]
    assert all(f is one for f in member_frames(one, [5, 6]))  # "auto": one series, seeds only
    with pytest.raises(DataError, match="at least 2 items"):
        member_frames(one, [5, 6], bootstrap=True)
    with pytest.raises(ValueError, match="bootstrap: expected True, False or 'auto'"):
        member_frames(df, [5, 6], bootstrap="yes")
