"""Scores checked against properscoring and gluonts, and on draws from the true distribution."""

import numpy as np
import pandas as pd
import properscoring
import pytest
import torch

from tsdiff import metrics as M


def test_crps_matches_properscoring_incl_ties_and_single_sample():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 7))
    x = rng.normal(size=(3, 40, 7))
    x[:, :10] = np.round(x[:, :10])  # ties among samples
    y[0, :3] = x[0, 0, :3]  # ties between samples and target
    ours = M.crps_from_samples(x, y)
    ref = properscoring.crps_ensemble(y, np.moveaxis(x, 1, -1))
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    x1 = rng.normal(size=(3, 1, 7))
    np.testing.assert_allclose(M.crps_from_samples(x1, y), np.abs(x1[:, 0] - y), atol=1e-12)
    xc = np.repeat(x[:, :1], 5, axis=1)  # all samples equal: CRPS = absolute error
    np.testing.assert_allclose(M.crps_from_samples(xc, y), np.abs(xc[:, 0] - y), atol=1e-12)


def test_normalised_crps_ignores_nan_targets():
    rng = np.random.default_rng(1)
    x, y = rng.normal(5, 1, size=(2, 30, 4)), rng.normal(5, 1, size=(2, 4))
    y_nan = y.copy()
    y_nan[1, 2] = np.nan
    keep = ~np.isnan(y_nan)
    ref = properscoring.crps_ensemble(y, np.moveaxis(x, 1, -1))[keep].sum() / np.abs(y[keep]).sum()
    assert M.normalised_crps(x, y_nan) == pytest.approx(ref, rel=1e-9)


def test_sample_quantiles_match_gluonts_sample_forecast():
    from gluonts.model.forecast import SampleForecast  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    rng = np.random.default_rng(2)
    x = rng.normal(size=(37, 5))
    fc = SampleForecast(samples=x, start_date=pd.Period("2020-01-01", freq="D"))
    qs = [0.05, 0.1, 0.25, 0.5, 0.9, 0.95]
    ours = M.sample_quantiles(x, qs, axis=0)
    for i, q in enumerate(qs):
        np.testing.assert_array_equal(ours[i], fc.quantile(q))


def test_wql_matches_gluonts_evaluate_forecasts():
    from gluonts.dataset.common import ListDataset  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    from gluonts.dataset.split import split  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    from gluonts.ev.metrics import MeanWeightedSumQuantileLoss  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    from gluonts.model import evaluate_forecasts  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    from gluonts.model.forecast import SampleForecast  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    rng = np.random.default_rng(3)
    n, s, h = 4, 50, 6
    hist = rng.normal(10, 2, (n, 30)).astype(np.float32).astype(np.float64)  # gluonts stores f32
    start = pd.Period("2020-01-01", freq="D")
    ds = ListDataset([{"start": start, "target": z} for z in hist], freq="D")
    test_data = split(ds, offset=-h)[1].generate_instances(prediction_length=h, windows=1)
    x = rng.normal(10, 2, (n, s, h))
    fcs = [
        SampleForecast(samples=x[i], start_date=start + 30 - h, item_id=str(i)) for i in range(n)
    ]
    qs = M.DEFAULT_QUANTILES
    res = evaluate_forecasts(
        fcs, test_data=test_data, metrics=[MeanWeightedSumQuantileLoss(quantile_levels=qs)]
    )
    ref = float(res["mean_weighted_sum_quantile_loss"].iloc[0])
    # gluonts sums in float32 along the way, hence the tolerance
    assert M.weighted_quantile_loss(x, hist[:, -h:]) == pytest.approx(ref, rel=1e-6)
    qf = M.sample_quantiles(x, qs)
    assert M.weighted_quantile_loss(None, hist[:, -h:], qs, quantile_forecasts=qf) == pytest.approx(
        ref, rel=1e-6
    )


def test_calibration_and_coverage_on_true_distribution():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 200, 10))
    y = rng.normal(size=(400, 10))
    for level in M.COVERAGE_LEVELS:
        assert abs(M.coverage(x, y, level) - level) < 0.03
    assert M.calibration_error(x, y) < 0.02
    pit = M.pit_values(x, y, np.random.default_rng(0))
    hist = np.histogram(pit, bins=10, range=(0, 1))[0] / pit.size
    assert np.abs(hist - 0.1).max() < 0.02
    overconfident = 0.3 * x
    assert M.coverage(overconfident, y, 0.9) < 0.5
    assert M.calibration_error(overconfident, y) > 0.1


def test_pit_randomises_ties():
    x = np.zeros((1000, 20, 1))  # point mass at the target
    pit = M.pit_values(x, np.zeros((1000, 1)), np.random.default_rng(0))
    assert 0.45 < pit.mean() < 0.55 and pit.min() > 0 and pit.max() < 1


def test_energy_score_equals_crps_in_one_dimension_and_variogram_sane():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 30, 1)), rng.normal(size=(6, 1))
    np.testing.assert_allclose(M.energy_score(x, y), M.crps_from_samples(x, y)[:, 0], atol=1e-12)
    xs, ys = rng.normal(size=(200, 4)), rng.normal(size=4)
    assert M.energy_score(xs, ys) < M.energy_score(xs + 2.0, ys)
    corr = rng.normal(size=(200, 1)) + 0.1 * rng.normal(size=(200, 4))  # strongly correlated
    y_corr = rng.normal() + 0.1 * rng.normal(size=4)
    assert M.variogram_score(corr, y_corr) < M.variogram_score(xs, y_corr)


def test_mase_msis_nd_simple_cases():
    y = np.array([[1.0, 2.0, 3.0]])
    perfect = np.repeat(y[:, None], 5, axis=1)
    insample = [np.arange(10.0)]  # mean |diff| at lag 1 = 1
    assert M.mase(perfect, y, insample, 1) == 0.0
    assert M.mase(perfect + 2, y, insample, 1) == pytest.approx(2.0)
    assert M.nd(perfect + 1, y) == pytest.approx(3 / 6)
    assert M.msis(perfect, y, insample, 1) == 0.0  # zero-width interval containing y
    assert M.msis(perfect + 1, y, insample, 1, alpha=0.05) == pytest.approx(2 / 0.05)


def test_evaluate_samples_keys_and_consistency():
    rng = np.random.default_rng(6)
    x, y = rng.normal(10, 1, size=(3, 20, 4, 2)), rng.normal(10, 1, size=(3, 4, 2))
    hist = [rng.normal(10, 1, size=(30, 2)) for _ in range(3)]
    out = M.evaluate_samples(x, y, insample=hist, season=1)
    for key in ("crps", "crps_sum", "wql", "nd", "cov50", "cov80", "cov90", "cov95"):
        assert np.isfinite(out[key])
    for key in ("calibration_error", "energy_score", "variogram_score", "mase", "msis"):
        assert np.isfinite(out[key])
    assert out["pit"].shape == (24,)
    ref = properscoring.crps_ensemble(y, np.moveaxis(x, 1, -1)).sum() / np.abs(y).sum()
    assert out["crps"] == pytest.approx(ref, rel=1e-9)
    ref_es = M.energy_score(x.reshape(3, 20, 8), y.reshape(3, 8)).mean()
    assert out["energy_score"] == pytest.approx(ref_es)
    uni = M.evaluate_samples(x[..., 0], y[..., 0])
    assert uni["crps"] == pytest.approx(M.normalised_crps(x[..., 0], y[..., 0]))


def test_torchmetrics_equal_numpy_over_several_updates():
    rng = np.random.default_rng(7)
    x, y = rng.normal(3, 1, size=(9, 25, 5, 2)), rng.normal(3, 1, size=(9, 5, 2))
    y[2, 1, 0] = np.nan
    crps, cov = M.CRPSMetric(), M.CoverageMetric(0.8)
    for sl in (slice(0, 2), slice(2, 7), slice(7, 9)):
        crps.update(torch.from_numpy(x[sl]), torch.from_numpy(y[sl]))
        cov.update(torch.from_numpy(x[sl]).float(), torch.from_numpy(y[sl]).float())
    flat_x, flat_y = x.transpose(0, 3, 1, 2), y.transpose(0, 2, 1)
    assert crps.compute().item() == pytest.approx(M.normalised_crps(flat_x, flat_y), rel=1e-9)
    assert cov.compute().item() == pytest.approx(M.coverage(flat_x, flat_y, 0.8), rel=1e-9)
