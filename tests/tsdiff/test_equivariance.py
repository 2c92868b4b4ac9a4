"""Numbers at any scale: the forecast of ``a * y + b`` is ``a`` times the forecast of ``y``, plus
``b`` (same seed), and a constant series is forecast as that constant.

One tiny model per mode is trained once on ``y``; every check predicts transformed copies of the
same frame with it. The property holds for ``a > 0`` only: the denoiser is not sign-symmetric
(it was never trained to forecast ``-y`` as the mirror image of ``y``), so ``a < 0`` is not
covered. It also needs ``scale_features=False`` (the default): with it, the denoiser is given
each channel's absolute level and scale on purpose.
"""

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdiff import Forecaster
from tsdiff.data.frames import Columns, frame_to_series
from tsdiff.data.windows import collate, make_window

H, L, S = 4, 16, 12
TARGETS = ["y", "v"]
TOL = 0.01  # of the transformed series' spread


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = np.arange(80)
    rows = []
    for k, item in enumerate(["a", "b"]):
        ts = pd.date_range("2022-03-01", periods=len(t), freq="h")
        y = 3 * np.sin(t / 5 + k) + 0.5 * rng.standard_normal(len(t)) + 10 * k
        v = 0.2 * t + rng.standard_normal(len(t))
        rows.append(pd.DataFrame({"item_id": item, "timestamp": ts, "y": y, "v": v}))
    return pd.concat(rows, ignore_index=True)


def _fit(mode: str) -> Forecaster:
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
        batch_size=16,
        max_steps=20,
        calibration="both",  # a fitted temperature and spread factor take part too
        progress=False,
        mode=mode,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f.fit(_frame(), target=TARGETS)


@pytest.fixture(scope="module", params=["masked", "flow"])
def fitted(request):
    torch.set_num_threads(1)
    return _fit(request.param)


def _transformed(df: pd.DataFrame, a: float, b: np.ndarray) -> pd.DataFrame:
    out = df.copy()
    out[TARGETS] = a * df[TARGETS].to_numpy() + b
    return out


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    log_a=st.floats(-9.0, 9.0),
    b_spreads=st.floats(-1e6, 1e6),
)
def test_forecast_of_affine_transform_is_affine_transform_of_forecast(fitted, log_a, b_spreads):
    """F(a * y + b) = a * F(y) + b within 1 % of the spread of a * y, for a in [1e-9, 1e9] and
    b up to 1e6 spreads of a * y either way (the same seed draws the same random numbers)."""
    df = _frame()
    a = 10.0**log_a
    spread = df.groupby("item_id")[TARGETS].std().to_numpy()  # [items, C]
    b = b_spreads * a * df[TARGETS].std().to_numpy()  # [C], one shift per channel
    ref = fitted.predict(df, num_samples=S, seed=3).samples  # [items, S, H, C]
    got = fitted.predict(_transformed(df, a, b), num_samples=S, seed=3).samples
    err = np.abs(got - (a * ref + b)) / (a * spread[:, None, None, :])
    assert err.max() <= TOL, f"a={a:g}, b={b_spreads:g} spreads: error {err.max():.3g} spreads"


@pytest.mark.parametrize("level", [0.0, 7.3, -2.5e6])
def test_constant_series_gets_degenerate_forecast_at_its_value(fitted, level):
    """A constant context (here item a's channel y) is forecast as that constant on every path
    and step; the item's other channel and the other item are forecast as usual."""
    df = _frame()
    df.loc[df["item_id"] == "a", "y"] = level
    fc = fitted.predict(df, num_samples=S, seed=0)
    assert fc.samples.dtype == np.float64
    np.testing.assert_allclose(fc.samples[0, :, :, 0], level, rtol=1e-12, atol=0)
    assert fc.samples[0, :, :, 1].std() > 0 and fc.samples[1].std() > 0
    q = fc.to_dataframe(quantiles=(0.1, 0.9))
    a_rows = q[q["item_id"] == "a"]
    np.testing.assert_allclose(a_rows[["y_mean", "y_q0.1", "y_q0.9"]], level, rtol=1e-12)


def test_constant_context_after_a_varying_past_is_degenerate(fitted):
    """Only the last L steps (the context) count: a series that ends flat is forecast flat."""
    df = _frame()
    a = df["item_id"] == "a"
    last = df[a].index[-L:]
    df.loc[last, "y"] = 4.25
    fc = fitted.predict(df, num_samples=S, seed=0)
    assert (fc.samples[0, :, :, 0] == fc.samples[0, :1, :1, 0]).all()
    np.testing.assert_allclose(fc.samples[0, :, :, 0], 4.25, rtol=1e-12)


def test_targets_travel_as_float64_to_the_network_boundary(fitted):
    """A level of 1e6 spreads survives frames and windows (float32 would keep 0.12 spread of it)
    and the model sees the same float32 z as for the unshifted series."""
    df = _frame()
    shifted = _transformed(df, 1.0, 1e6 * df[TARGETS].std().to_numpy())
    cols = Columns(targets=TARGETS)
    series = [frame_to_series(x, cols, "h")[0] for x in (df, shifted)]
    assert series[1].target.dtype == np.float64
    batches = [collate([make_window(s, 60, L, H, "h", fitted.lags)]) for s in series]
    assert batches[1]["ctx"].dtype == batches[1]["fut"].dtype == torch.float64
    zs = [fitted.model.scale_batch(batch) for batch in batches]
    assert zs[1]["z_ctx"].dtype == torch.float32 and zs[1]["loc"].dtype == torch.float64
    torch.testing.assert_close(zs[1]["z_ctx"], zs[0]["z_ctx"], atol=1e-6, rtol=0)
    torch.testing.assert_close(zs[1]["z_fut"], zs[0]["z_fut"], atol=1e-6, rtol=0)


def test_training_leaves_a_constant_contexts_horizon_out_of_the_loss(fitted):
    """A constant context says nothing about the spread of what follows, so its channel's
    horizon cells are not scored (the sampler forecasts the constant there anyway)."""
    df = _frame()
    df.loc[df["item_id"] == "a", "y"] = 2.0
    series = frame_to_series(df, Columns(targets=TARGETS), "h")[0]
    batch = collate([make_window(series, 60, L, H, "h", fitted.lags)])  # the model's lags: [24]
    s = fitted.model.scale_batch(batch)
    assert s["scale"][0, 0, 0] == 0 and s["scale"][0, 0, 1] > 0
    assert batch["fut_obs"].all() and not s["fut_obs"][..., 0].any() and s["fut_obs"][..., 1].all()
    assert (s["z_ctx"][..., 0] == 0).all() and (s["z_fut"][..., 0] == 0).all()
