"""The suite's metrics on small arrays with known answers, and its aggregate maths on a
hand-made table (benchmarks.suite_metrics, the general ones in tsdiff.metrics)."""

import math

import numpy as np
import pytest

from benchmarks.suite_metrics import (
    LEVELS,
    Forecast,
    average_ranks,
    geometric_mean_relative,
    interpolate_levels,
    quantile_paths,
    score,
    wins,
)
from tsdiff.metrics import crps_horizon_sum, domain_lower_bounds, share_below


def test_crps_horizon_sum_of_point_paths_is_the_absolute_error_of_the_sum():
    # one series, two identical paths [1, 2, 3]: the sum 6 against the observed 10
    samples = np.array([[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]])  # [1, S=2, H=3]
    y = np.array([[2.0, 3.0, 5.0]])
    assert crps_horizon_sum(samples, y) == pytest.approx(4.0 / 10.0)


def test_crps_horizon_sum_leaves_missing_steps_out_of_both_sums():
    samples = np.array([[[1.0, 100.0, 3.0]]])
    y = np.array([[2.0, np.nan, 5.0]])  # the 100 at the missing step must not count
    assert crps_horizon_sum(samples, y) == pytest.approx(abs(4.0 - 7.0) / 7.0)
    # a series with no observed step is skipped, not a NaN
    both = np.concatenate([samples, samples])
    y2 = np.array([[2.0, np.nan, 5.0], [np.nan, np.nan, np.nan]])
    assert crps_horizon_sum(both, y2) == pytest.approx(3.0 / 7.0)


def test_crps_horizon_sum_punishes_paths_incoherent_over_time():
    """Same marginals per step; perfectly correlated steps give a sum as wide as the truth's,
    independent steps a sum too narrow: the horizon-sum CRPS tells them apart."""
    rng = np.random.default_rng(0)
    h, s, n = 12, 200, 300
    level = rng.normal(size=(n, 1))
    y = np.repeat(level, h, 1) + 10.0  # each series sits at one random level
    coherent = 10.0 + np.repeat(rng.normal(size=(n, s, 1)), h, 2)
    incoherent = 10.0 + rng.normal(size=(n, s, h))
    assert crps_horizon_sum(coherent, y) < 0.9 * crps_horizon_sum(incoherent, y)  # ~0.84x


def test_domain_is_nonnegative_per_channel_when_all_training_values_are():
    train = np.array([[0.0, -1.0, 5.0], [3.0, 2.0, np.nan], [0.0, 4.0, 1.0]])
    assert domain_lower_bounds(train).tolist() == [0.0, -np.inf, 0.0]


def test_share_below_counts_sample_values_outside_their_channel_domain():
    samples = np.zeros((2, 5, 3, 2))  # [N, S, H, C]
    samples[0, :2, 0, 0] = -1.0  # 2 values below 0 in the non-negative channel
    samples[:, :, :, 1] = -50.0  # a real-valued channel: never outside
    assert share_below(samples, np.array([0.0, -np.inf])) == pytest.approx(2 / samples.size)


def test_interpolated_levels_stay_inside_the_model_grid():
    levels = (0.1, 0.5, 0.9)
    q = np.array([1.0, 5.0, 9.0])[:, None]  # [Q, 1]
    out = interpolate_levels(q, levels)[:, 0]
    lv = np.round(LEVELS, 10)
    assert out[lv.tolist().index(0.3)] == pytest.approx(3.0)
    assert out[lv.tolist().index(0.5)] == pytest.approx(5.0)
    assert math.isnan(out[lv.tolist().index(0.05)]) and math.isnan(out[lv.tolist().index(0.95)])


def test_quantile_paths_follow_the_quantiles_and_are_coherent_over_time():
    levels = tuple(np.round(np.arange(1, 20) * 0.05, 2))
    base = np.linspace(-1, 1, len(levels))
    q = np.broadcast_to(
        base[:, None, None, None] + np.arange(4)[None, None, :, None], (19, 3, 4, 2)
    )
    x = quantile_paths(q, levels, n_paths=400)
    assert x.shape == (3, 400, 4, 2)
    # every path keeps its level over the horizon: step t = step 0 + t
    assert np.allclose(x - x[:, :, :1], np.arange(4)[None, None, :, None])
    # the sample median is the forecast median
    assert np.median(x[:, :, 0], axis=1) == pytest.approx(np.zeros((3, 2)), abs=0.02)


def test_score_of_a_perfect_point_forecast():
    y = np.array([[[1.0], [2.0], [np.nan]], [[3.0], [4.0], [5.0]]])  # [N=2, H=3, C=1]
    fc = Forecast(samples=np.repeat(np.nan_to_num(y, nan=7.0)[:, None], 10, 1))
    hist = [np.array([[0.0], [1.0], [3.0]])] * 2  # seasonal scale at lag 1: mean(1, 2) = 1.5
    out = score(fc, y, hist, season=1, lower=np.array([0.0]))
    assert out["wql"] == 0 and out["crps"] == 0 and out["mase"] == 0 and out["crps_sum"] == 0
    assert out["cov50"] == 1 and out["cov90"] == 1 and out["outside_domain"] == 0
    assert math.isnan(out["energy_score"])  # univariate set


# ---------------------------------------------------------------------------------- aggregates
TABLE = [  # a hand-made per-set table: seasonal naive, a good model and a bad one on 3 sets
    {"set": "a", "model": "seasonal_naive", "wql": 0.2, "mase": 1.0},
    {"set": "a", "model": "good", "wql": 0.1, "mase": 0.5},
    {"set": "a", "model": "bad", "wql": 0.4, "mase": 2.0},
    {"set": "b", "model": "seasonal_naive", "wql": 0.5, "mase": 2.0},
    {"set": "b", "model": "good", "wql": 0.5, "mase": 1.0},
    {"set": "b", "model": "bad", "wql": 0.25, "mase": 8.0},
    {"set": "c", "model": "seasonal_naive", "wql": 1.0, "mase": 1.0},
    {"set": "c", "model": "good", "wql": 0.8, "mase": float("nan")},  # left out, not zero
]


def test_geometric_mean_relative_to_seasonal_naive():
    g = geometric_mean_relative(TABLE, "wql")
    assert g["seasonal_naive"] == (pytest.approx(1.0), 3)
    assert g["good"][0] == pytest.approx((0.5 * 1.0 * 0.8) ** (1 / 3)) and g["good"][1] == 3
    assert g["bad"][0] == pytest.approx((2.0 * 0.5) ** 0.5) and g["bad"][1] == 2
    m = geometric_mean_relative(TABLE, "mase")
    assert m["good"] == (pytest.approx((0.5 * 0.5) ** 0.5), 2)


def test_average_rank_shares_ties_and_counts_only_sets_a_model_ran():
    r = average_ranks(TABLE, "wql")
    # a: good 1, snaive 2, bad 3; b: bad 1, snaive/good tie 2.5; c: good 1, snaive 2
    assert r["good"] == pytest.approx((1 + 2.5 + 1) / 3)
    assert r["seasonal_naive"] == pytest.approx((2 + 2.5 + 2) / 3)
    assert r["bad"] == pytest.approx((3 + 1) / 2)


def test_wins_count_strictly_lower_scores_over_shared_sets():
    w = wins(TABLE, "good", "wql")
    assert w == {"seasonal_naive": (2, 3), "bad": (1, 2)}
