"""Synthetic series for the pretraining corpus: seeded, finite, shaped as documented, and each
generator showing the structure it claims (periodicity, zeros, convex mixing, mix shares)."""

import time
from collections import Counter

import numpy as np
import pytest

from tsdiff.pretrain import synthetic as S

UNIVARIATE = ("kernel_synth", "structural", "intermittent")


def _pool(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(m, 1.0, size=n) for m, n in ((5.0, 300), (-2.0, 150), (0.5, 500))]


def _acf(y, lag):
    y = y - y.mean()
    return float(np.dot(y[:-lag], y[lag:]) / np.dot(y, y))


@pytest.mark.parametrize("name", UNIVARIATE)
def test_same_seed_gives_the_same_series_and_another_seed_another(name):
    gen = S.GENERATORS[name]
    a = gen(np.random.default_rng(7), 200)
    b = gen(np.random.default_rng(7), 200)
    c = gen(np.random.default_rng(8), 200)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generate_is_reproducible_from_its_generator_incl_mixups():
    a = S.generate(np.random.default_rng(3), 30, pool=_pool())
    b = S.generate(np.random.default_rng(3), 30, pool=_pool())
    assert len(a) == len(b) == 30
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", UNIVARIATE)
@pytest.mark.parametrize("length", [1, 2, 7, 100, 1024, 1500])
def test_generators_return_finite_float64_of_the_asked_length(name, length):
    rng = np.random.default_rng(length)
    for _ in range(3 if length > 1000 else 20):
        y = S.GENERATORS[name](rng, length)
        assert y.shape == (length,) and y.dtype == np.float64
        assert np.isfinite(y).all()


def test_generate_lengths_are_log_uniform_in_the_range():
    out = S.generate(np.random.default_rng(0), 400, (64, 1024), mix={"intermittent": 1.0})
    lengths = np.array([y.size for y in out])
    assert lengths.min() >= 64 and lengths.max() <= 1024
    # log-uniform: half below the geometric mean 256 (a uniform draw would put 20 % there)
    assert 0.4 < np.mean(lengths < 256) < 0.6


def test_generate_without_pool_is_finite_float64_and_spans_many_levels():
    out = S.generate(np.random.default_rng(1), 120, (32, 200))
    assert all(y.ndim == 1 and y.dtype == np.float64 and 32 <= y.size <= 200 for y in out)
    assert all(np.isfinite(y).all() for y in out)
    levels = np.log10([np.abs(y).mean() for y in out if np.abs(y).mean() > 0])
    assert levels.max() - levels.min() > 4  # the random affine scale covers orders of magnitude


def test_intermittent_is_non_negative_with_many_exact_zeros():
    rng = np.random.default_rng(2)
    draws = [S.intermittent(rng, 200) for _ in range(60)]
    assert all((y >= 0).all() for y in draws)
    zero_share = np.array([np.mean(y == 0) for y in draws])
    assert (zero_share > 0).all()
    assert zero_share.mean() > 0.4  # occurrence p <= 0.6: at least ~40 % zeros on average
    assert all((y[y > 0] > 0).all() for y in draws)
    out = S.generate(rng, 40, mix={"intermittent": 1.0})  # no affine shift: stays non-negative
    assert all((y >= 0).all() and (y == 0).any() for y in out)


def test_kernel_synth_with_a_periodic_kernel_repeats_at_its_period():
    rng = np.random.default_rng(4)
    spec = [("periodic", {"period": 24.0, "scale": 1.0}), ("white", {"variance": 1e-3})]
    for _ in range(5):
        y = S.kernel_synth(rng, 480, kernels=spec)
        assert _acf(y, 24) > 0.9
        assert _acf(y, 24) > _acf(y, 12) + 0.1


def test_kernel_synth_on_a_coarse_grid_keeps_a_long_period():
    rng = np.random.default_rng(5)
    y = S.kernel_synth(rng, 4000, kernels=[("periodic", {"period": 365.0, "scale": 1.0})])
    assert y.shape == (4000,) and np.isfinite(y).all()
    assert _acf(y, 365) > 0.8


def test_kernel_synth_draws_from_the_bank_are_finite_even_when_degenerate():
    rng = np.random.default_rng(6)
    for spec in [("linear", {"c": 0.5, "sigma0": 0.0}), ("constant", {"value": 1.0})]:
        y = S.kernel_synth(rng, 300, kernels=[spec])  # rank-1 covariance: jitter / eigen path
        assert np.isfinite(y).all()
    flat = S.kernel_synth(rng, 300, kernels=[("constant", {"value": 1.0})])
    assert np.ptp(flat) < 0.1 * np.abs(flat).mean() + 0.05  # a constant kernel draws a level


def test_gp_sampling_falls_back_to_an_eigen_basis_when_cholesky_fails():
    cov = np.diag([1.0, 1.0, -1.0])  # indefinite: no jitter of the schedule makes it PD
    draw = S._sample_gp(np.random.default_rng(0), cov)
    assert np.isfinite(draw).all() and draw[2] == 0.0  # the negative direction is clipped away


def test_kernel_synth_rejects_an_unknown_kernel_naming_the_bank():
    with pytest.raises(ValueError, match="unknown kernel 'matern'.*periodic"):
        S.kernel_synth(np.random.default_rng(0), 50, kernels=[("matern", {})])


def test_ts_mixup_is_a_convex_mix_of_mean_scaled_parts():
    pool = _pool()
    pool = [s[:150] for s in pool]  # all of the asked length: every window is a whole series
    scaled = np.stack([s / np.abs(s).mean() for s in pool])
    lo, hi = scaled.min(axis=0), scaled.max(axis=0)
    rng = np.random.default_rng(9)
    mixed_any = False
    for _ in range(40):
        y = S.ts_mixup(rng, pool, 150)
        assert y.shape == (150,)
        assert (y >= lo - 1e-9).all() and (y <= hi + 1e-9).all()
        mixed_any |= not any(np.allclose(y, s) for s in scaled)
    assert mixed_any  # some draws mix several series, not just pick one


def test_ts_mixup_nan_only_where_every_part_is_missing():
    rng = np.random.default_rng(10)
    holey = rng.normal(3.0, 1.0, size=80)
    holey[20:40] = np.nan
    full = rng.normal(-1.0, 1.0, size=80)
    for _ in range(10):  # one series only: its gaps are gaps of every part
        y = S.ts_mixup(rng, [holey], 80)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(holey))
    for _ in range(30):
        y = S.ts_mixup(rng, [holey, full], 80)
        assert not np.isnan(y[:20]).any() and not np.isnan(y[40:]).any()


def test_ts_mixup_with_short_pool_series_returns_a_shorter_series():
    rng = np.random.default_rng(11)
    y = S.ts_mixup(rng, [rng.normal(size=40)], 100)
    assert y.shape == (40,)


def test_ts_mixup_rejects_an_empty_or_malformed_pool():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no series with a finite value"):
        S.ts_mixup(rng, [], 10)
    with pytest.raises(ValueError, match=r"pool\[1\] has shape \(2, 5\)"):
        S.ts_mixup(rng, [np.ones(5), np.ones((2, 5))], 10)


def _count_generators(monkeypatch, rng, n, **kw):
    calls = Counter()

    def tagged(name, fn):
        def wrapper(*args):
            calls[name] += 1
            return fn(*args)

        return wrapper

    for name, fn in list(S.GENERATORS.items()):
        monkeypatch.setitem(S.GENERATORS, name, tagged(name, fn))
    out = S.generate(rng, n, (32, 128), **kw)
    assert len(out) == n
    return {k: v / n for k, v in calls.items()}


def test_generate_honours_the_default_mix_weights(monkeypatch):
    shares = _count_generators(monkeypatch, np.random.default_rng(12), 400, pool=_pool())
    for name, weight in S.DEFAULT_MIX.items():
        assert shares.get(name, 0.0) == pytest.approx(weight, abs=0.07), name


def test_generate_renormalises_away_ts_mixup_without_a_pool(monkeypatch):
    mix = {"kernel_synth": 0.2, "structural": 0.2, "intermittent": 0.1, "ts_mixup": 0.5}
    shares = _count_generators(monkeypatch, np.random.default_rng(13), 400, mix=mix)
    assert "ts_mixup" not in shares
    assert shares["kernel_synth"] == pytest.approx(0.4, abs=0.07)
    assert shares["intermittent"] == pytest.approx(0.2, abs=0.07)


def test_generate_rejects_unknown_names_and_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown generator.*gp_mix.*known: kernel_synth"):
        S.generate(rng, 3, mix={"gp_mix": 1.0, "structural": 1.0})
    with pytest.raises(ValueError, match="ts_mixup needs pool"):
        S.generate(rng, 3, mix={"ts_mixup": 1.0})
    with pytest.raises(ValueError, match="length_range"):
        S.generate(rng, 3, length_range=(100, 10))
    with pytest.raises(ValueError, match="structural: length must be a positive integer"):
        S.structural(rng, 0)


def test_generate_fifty_series_takes_seconds_not_minutes():
    start = time.perf_counter()
    S.generate(np.random.default_rng(14), 50, pool=_pool())
    assert time.perf_counter() - start < 20.0
