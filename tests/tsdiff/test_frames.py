"""Bad input (issue 4): a clear error naming the column / item, or documented handling with
finite forecasts. Never a NaN forecast, never a crash deep inside torch."""

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdiff import Forecaster
from tsdiff.data.frames import Columns, DataError, frame_to_series

H, L = 4, 16
TINY = dict(
    prediction_length=H,
    context_length=L,
    freq="h",
    patch_size=4,
    n_bins=32,
    d_model=32,
    n_layers=1,
    n_heads=2,
    batch_size=8,
    max_steps=2,
    progress=False,
)


def frame(values, item="a", start="2021-01-01", freq="h", ts=None) -> pd.DataFrame:
    values = np.asarray(values, dtype=np.float64)
    ts = pd.date_range(start, periods=len(values), freq=freq) if ts is None else ts
    return pd.DataFrame({"item_id": item, "timestamp": ts, "y": values})


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    t = np.arange(80)
    df = pd.concat([frame(np.sin(t / 3) + 5, "a"), frame(np.cos(t / 5) * 2, "b")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Forecaster(**TINY).fit(df, target="y")


def finite_forecast(f, df, n_items=1):
    fc = f.predict(df, num_samples=8)
    assert fc.samples.shape == (n_items, 8, H, 1)
    assert np.isfinite(fc.samples).all()
    return fc


def test_unsorted_rows_are_sorted(fitted):
    df = frame(np.arange(40.0))
    a = fitted.predict(df, num_samples=4, seed=3).samples
    b = fitted.predict(df.sample(frac=1.0, random_state=0), num_samples=4, seed=3).samples
    np.testing.assert_array_equal(a, b)


def test_duplicate_timestamps_name_the_item(fitted):
    df = frame(np.arange(10.0))
    df = pd.concat([df, df.iloc[[3]]])
    with pytest.raises(DataError, match="item 'a': duplicate timestamps"):
        fitted.predict(df)


def test_off_grid_timestamps(fitted):
    ts = pd.date_range("2021-01-01", periods=10, freq="h").tolist()
    ts[5] = ts[5] + pd.Timedelta(minutes=7)
    with pytest.raises(DataError, match="freq='h' grid"):
        fitted.predict(frame(np.arange(10.0), ts=ts))


def test_items_on_different_phases_each_keep_their_own_grid():
    """Items share one grid when they start on it; an item on another phase of the frequency
    (here :30 against :00) gets its own, and an off-grid stamp is still an error."""
    a = frame(np.arange(10.0), "a", start="2021-01-01 00:00")
    b = frame(np.arange(6.0), "b", start="2021-01-01 03:30")
    c = frame(np.arange(5.0), "c", start="2021-01-01 02:00")
    sa, sb, sc = frame_to_series(pd.concat([a, b, c]), Columns(["y"]), "h")
    assert list(sa.index) == list(a.timestamp) and list(sc.index) == list(c.timestamp)
    assert list(sb.index) == list(b.timestamp) and not np.isnan(sb.target).any()
    m = frame_to_series(frame(np.arange(4.0), "m", "2021-01-01", "MS"), Columns(["y"]), "MS")
    assert [t.month for t in m[0].index] == [1, 2, 3, 4]
    bad = c.copy()
    bad.loc[2, "timestamp"] += pd.Timedelta(minutes=30)
    with pytest.raises(DataError, match="item 'c': timestamps"):
        frame_to_series(pd.concat([a, bad]), Columns(["y"]), "h")


def test_gaps_become_unobserved_and_forecasts_stay_finite(fitted):
    df = frame(np.sin(np.arange(60.0)))
    df = df.drop(index=range(40, 55))  # a 15-step hole at the end of the context
    s = frame_to_series(df, Columns(["y"]), "h")[0]
    assert len(s) == 60 and np.isnan(s.target[40:55]).all()
    finite_forecast(fitted, df)


def test_short_series_predict_pads_and_fit_names_item(fitted):
    finite_forecast(fitted, frame([3.0, 4.0]))  # shorter than the context: left-padded
    df = pd.concat([frame(np.arange(30.0), "long"), frame([1.0, 2.0, 3.0], "short")])
    with pytest.raises(DataError, match="item 'short'.*fewer than"):
        Forecaster(**TINY).fit(df, target="y")


def test_all_nan_series(fitted):
    df = pd.concat([frame(np.arange(20.0), "ok"), frame([np.nan] * 20, "empty")])
    with pytest.raises(DataError, match="item 'empty': every target value is missing"):
        fitted.predict(df)


@pytest.mark.parametrize("c", [0.0, 7.5, -1e6, 1e-9])
def test_constant_series_gets_a_safe_scale(fitted, c):
    fc = finite_forecast(fitted, frame(np.full(30, c)))
    spread = np.abs(fc.samples - c).max()
    safe = max(1e-2 * abs(c), 1e-6)  # tsdiff.encoding: max(std, 1e-2 mean|y|, 1e-6)
    assert spread <= 20.0 * safe * 1.01  # samples stay within z_max safe scales of c


def test_non_numeric_target(fitted):
    df = frame(np.arange(10.0))
    df["y"] = df["y"].astype(str) + "kW"
    with pytest.raises(DataError, match="column 'y': expected numbers"):
        fitted.predict(df)


def test_unknown_column():
    with pytest.raises(DataError, match=r"unknown column\(s\) \['nope'\]"):
        Forecaster(**TINY).fit(frame(np.arange(30.0)), target="nope")


def test_unparseable_freq():
    with pytest.raises(ValueError, match="freq: pandas cannot parse"):
        Forecaster(**{**TINY, "freq": "every tuesday"})


@pytest.mark.parametrize("bad", [np.inf, -np.inf, 1e30])
def test_infinite_or_huge_values(fitted, bad):
    v = np.arange(20.0)
    v[7] = bad
    with pytest.raises(DataError, match="column 'y'"):
        fitted.predict(frame(v))


def test_missing_timestamps_and_item_ids(fitted):
    df = frame(np.arange(5.0))
    df.loc[2, "timestamp"] = pd.NaT
    with pytest.raises(DataError, match="column 'timestamp': missing"):
        fitted.predict(df)
    df = frame(np.arange(5.0)).astype({"item_id": object})
    df.loc[1, "item_id"] = None
    with pytest.raises(DataError, match="column 'item_id'"):
        fitted.predict(df)
    with pytest.raises(DataError, match="cannot parse as timestamps"):
        fitted.predict(frame(np.arange(3.0), ts=["yesterday", "x", "y"]))


# ---------------------------------------------------------------- property-based
MESSY = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.floats(-1e3, 1e3)


@st.composite
def messy_frames(draw):
    """Frames with random items, lengths, NaN/inf/huge values, shuffles, dropped and repeated rows."""
    parts = []
    for k in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 40))
        vals = draw(st.lists(MESSY, min_size=n, max_size=n))
        parts.append(frame(vals, item=f"i{k}"))
    df = pd.concat(parts, ignore_index=True)
    if draw(st.booleans()) and len(df) > 2:
        df = df.drop(index=draw(st.lists(st.integers(0, len(df) - 1), max_size=5, unique=True)))
    if draw(st.booleans()) and len(df) > 0:
        df = pd.concat([df, df.iloc[[draw(st.integers(0, len(df) - 1))]]])
    return df.sample(frac=1.0, random_state=draw(st.integers(0, 9)))


SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(df=messy_frames())
def test_predict_on_messy_frames(fitted, df):
    try:
        fc = fitted.predict(df, num_samples=4)
    except ValueError as e:  # DataError included
        assert str(e)
        return
    assert fc.samples.shape == (df["item_id"].nunique(), 4, H, 1)
    assert np.isfinite(fc.samples).all()


@SETTINGS
@given(df=messy_frames())
def test_fit_on_messy_frames(df):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = Forecaster(**{**TINY, "calibrate": False}).fit(df, target="y")
    except ValueError as e:
        assert str(e)
        return
    fc = f.predict(df, num_samples=4)
    assert np.isfinite(fc.samples).all()
