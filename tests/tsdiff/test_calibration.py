"""Calibration: the spread factor keeps means and scales spread; fitting recovers a known factor."""

import numpy as np
import pytest

from tsdiff.calibration import fair_crps, fit_spread, grid_search, widen


def test_widen_keeps_the_mean_and_scales_the_spread():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 1.0, (5, 200, 4, 2)).astype(np.float32)  # [N, S, H, C]
    w = widen(x, 1.5)
    assert w.shape == x.shape and w.dtype == x.dtype
    np.testing.assert_allclose(w.mean(1), x.mean(1), atol=1e-5)
    np.testing.assert_allclose(w.std(1), 1.5 * x.std(1), rtol=1e-5)
    assert widen(x, 1.0) is x  # the identity costs nothing
    with pytest.raises(ValueError, match="spread: expected a positive number"):
        widen(x, 0.0)


@pytest.mark.parametrize("sd, expected", [(0.5, 2.0), (2.0, 0.5), (1.0, 1.0)])
def test_fit_spread_recovers_the_factor_that_matches_the_truth(sd, expected):
    """Paths centred right but with sd ``sd`` against truths of sd 1: the best factor is 1 / sd."""
    rng = np.random.default_rng(1)
    mu = rng.normal(0.0, 3.0, (400, 1, 3, 1))
    y = (mu[:, 0] + rng.normal(0.0, 1.0, (400, 3, 1))).astype(np.float32)
    z = (mu + sd * rng.normal(0.0, 1.0, (400, 64, 3, 1))).astype(np.float32)
    best, scores = fit_spread(z, y)
    assert best == pytest.approx(expected, rel=0.12)
    assert scores[best] == min(scores.values())
    # missing targets are left out: a cell masked everywhere cannot move the answer
    y_bad = y.copy()
    y_bad[:, 0] = 1e6
    obs = np.ones(y.shape, bool)
    obs[:, 0] = False
    assert fit_spread(z, y_bad, obs)[0] == pytest.approx(expected, rel=0.15)


def test_fair_crps_is_zero_for_a_point_mass_on_the_truth():
    y = np.ones((2, 3, 1))
    assert np.allclose(fair_crps(np.ones((2, 8, 3, 1)), y), 0.0)
    assert (fair_crps(np.zeros((2, 8, 3, 1)), y) > 0.99).all()


def test_calibration_grid_grows_when_the_best_value_is_at_an_edge():
    calls = []

    def score(t):  # minimum at 2.2, beyond the grid's top (1.5)
        calls.append(t)
        return (t - 2.2) ** 2

    best, scores = grid_search(score, (0.5, 1.0, 1.5), factor=1.25, max_extend=3)
    assert best == pytest.approx(2.3438, abs=1e-3)  # 1.5 * 1.25^2 (the next, 2.93, is worse)
    assert list(scores) == sorted(scores) and len(calls) == 6  # 3 + 1.875, 2.3438, 2.9297
    best, _ = grid_search(lambda t: (t - 1.0) ** 2, (0.5, 1.0, 1.5))
    assert best == 1.0  # an interior optimum: no extension
    best, scores = grid_search(lambda t: t, (0.5, 1.0), factor=2.0, max_extend=2)
    assert best == 0.125 and len(scores) == 4  # bounded below by max_extend
