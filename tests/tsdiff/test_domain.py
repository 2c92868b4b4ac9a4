"""Domains: where target values live (tsdiff.encoding), resolved at fit, kept by every path.

``domain="auto"`` makes a channel non-negative when its training data is; explicit bounds per
channel are checked in one line; no sample leaves the domain after predict, backtest, spread
widening (any factor) and rollouts; a bound the data sits on (an atom) gets exact mass; a saved
model keeps its bounds.
"""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff import Forecaster
from tsdiff.calibration import widen
from tsdiff.commands.fit import parse
from tsdiff.encoding import (
    ATOM_SHARE,
    BinEncoder,
    check_domain,
    domain_bounds,
    resolve_domain,
    to_domain,
)
from tsdiff.model import TSModelConfig
from tsdiff.scenarios import rollout

H, L = 6, 24


def _dom(lower=None, upper=None, lower_atom=False, upper_atom=False):
    return {"lower": lower, "upper": upper, "lower_atom": lower_atom, "upper_atom": upper_atom}


# ---------------------------------------------------------------------------- resolution
def test_auto_makes_a_channel_nonnegative_when_its_training_data_is():
    zeros = np.r_[np.zeros(50), np.linspace(0.1, 5, 50)]  # half its values sit on 0
    positive = np.linspace(1.0, 2.0, 100)  # >= 0 but never on 0
    signed = np.linspace(-1.0, 1.0, 100)
    values = np.stack([zeros, positive, signed], 1)
    values[3, 2] = np.nan  # unobserved values are ignored
    d = resolve_domain("auto", ["solar", "load", "temp"], values)
    assert d[0] == _dom(lower=0.0, lower_atom=True)  # zeros at night: an atom
    assert d[1] == _dom(lower=0.0)  # censored at 0, but the data does not sit there
    assert d[2] == _dom()  # negative values seen: real


def test_named_domains_and_explicit_bounds_per_channel():
    rh = np.r_[np.full(10, 100.0), np.linspace(20, 99, 90)]  # 10 % at saturation
    values = np.stack([rh, np.linspace(-3, 3, 100), np.linspace(-3, 3, 100)], 1)
    names = ["relative_humidity", "temp", "flow"]
    assert resolve_domain("real", names, np.abs(values)) == [_dom()] * 3
    assert resolve_domain("nonnegative", names, values)[1] == _dom(lower=0.0)
    d = resolve_domain({"relative_humidity": [0, 100], "flow": "nonnegative"}, names, values)
    assert d[0] == _dom(lower=0.0, upper=100.0, upper_atom=True)
    assert d[1] == _dom()  # left out of the dict: auto (its data is signed)
    assert d[2] == _dom(lower=0.0)
    half = resolve_domain({"temp": [None, 2.5]}, names, values)[1]
    assert half == _dom(upper=2.5)
    # an atom needs ATOM_SHARE of the values on the bound
    few = np.r_[np.zeros(1), np.ones(int(2 / ATOM_SHARE))][:, None]
    assert not resolve_domain("auto", ["x"], few)[0]["lower_atom"]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("positive", "domain: expected 'auto', 'real', 'nonnegative' or a dict"),
        (5, "domain: expected"),
        ({"rh": [100, 0]}, "domain['rh']: expected lower < upper"),
        ({"rh": [0]}, "domain['rh']: expected [lower, upper]"),
        ({"rh": ["0", 100]}, "domain['rh']: bounds must be finite numbers or null"),
        ({"rh": [0, math.inf]}, "domain['rh']: bounds must be finite numbers or null"),
        ({"rh": "positive"}, "domain['rh']: expected one of ('auto', 'real', 'nonnegative')"),
        ({3: "real"}, "domain: channel names must be strings"),
    ],
)
def test_a_bad_domain_is_one_line_naming_the_field_and_channel(spec, needle):
    for make in (lambda: check_domain(spec), lambda: Forecaster(domain=spec)):
        with pytest.raises(ValueError) as e:
            make()
        assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_tsdiff_fit_takes_the_domain_as_a_flag():
    base = ["--data.path", "x.csv", "--out", "o"]
    cfg = parse([*base, "--domain", '{"ghi": [0, null], "rh": [0, 100]}'])[0]
    assert cfg.domain == {"ghi": [0, None], "rh": [0, 100]}
    assert parse([*base, "--domain", "nonnegative"])[0].domain == "nonnegative"
    with pytest.raises(ValueError, match="^domain: expected 'auto'"):
        parse([*base, "--domain", "positive"])


def test_a_domain_for_a_channel_that_is_not_a_target_is_one_line(frame):
    f = Forecaster(prediction_length=H, context_length=L, domain={"humidity": [0, 100]})
    with pytest.raises(ValueError, match=r"domain: channel 'humidity' is not a target") as e:
        f.fit(frame, target=["solar", "temp"])
    assert "\n" not in str(e.value)


def test_a_corrupt_resolved_domain_in_a_model_config_is_one_line():
    with pytest.raises(ValueError, match=r"domain\[0\]: expected an object with keys"):
        TSModelConfig(domain=[{"lower": 0.0}])


# ---------------------------------------------------------------------------- decoding
def test_decoding_censors_at_a_bound_and_snaps_the_bin_of_an_atom():
    enc = BinEncoder(n_bins=32, z_max=20.0)
    loc = torch.tensor([[[10.0, 10.0]]], dtype=torch.float64)  # [B=1, 1, C=2]
    scale = torch.tensor([[[5.0, 5.0]]], dtype=torch.float64)
    z_b = -2.0  # the bound y = 0 in this window's z units
    lo_edge, hi_edge = enc.bin_edges_of(torch.tensor(z_b))
    assert lo_edge < z_b < hi_edge
    inside_bin_above = (z_b + float(hi_edge)) / 2  # in the bound's bin, above the bound
    zs = [-5.0, z_b, inside_bin_above, float(hi_edge) + 1e-3, 1.0]
    z = torch.tensor(zs, dtype=torch.float32)[None, :, None, None].expand(1, 5, 1, 2)
    dom = [_dom(lower=0.0, lower_atom=True), _dom(lower=0.0)]  # atom vs censoring only
    y = to_domain(z, loc, scale, dom, enc)[0, :, 0]  # [S, C]
    plain = (z[0, :, 0].double() * 5 + 10).numpy()
    atom, censored = y[:, 0].numpy(), y[:, 1].numpy()
    np.testing.assert_array_equal(atom[:3], 0.0)  # below, on, and within the bound's bin: 0
    np.testing.assert_allclose(atom[3:], plain[3:, 0])  # above the bin: unchanged
    np.testing.assert_array_equal(censored[:2], 0.0)  # below and on the bound: on it
    np.testing.assert_allclose(censored[2:], plain[2:, 1])  # within the bin: kept as drawn
    assert (y >= 0).all()
    # an upper atom: the bin holding it decodes to the bound; beyond it, censored
    up = to_domain(-z, loc, scale, [_dom(upper=20.0, upper_atom=True)] * 2, enc)[0, :, 0, 0]
    np.testing.assert_array_equal(up[:3].numpy(), 20.0)
    assert (up <= 20.0).all()


def test_channel_independent_rows_take_their_channel_s_bounds():
    dom = [_dom(lower=0.0), _dom(), _dom(upper=-1.0)]
    lo, hi, _, _ = domain_bounds(dom, 4, 1, channel=torch.tensor([0, 1, 2, 0]))
    assert lo.shape == hi.shape == (4, 1, 1)
    assert lo[:, 0, 0].tolist() == [0.0, -math.inf, -math.inf, 0.0]
    assert hi[:, 0, 0].tolist() == [math.inf, math.inf, -1.0, math.inf]


def test_widen_keeps_paths_in_the_domain_and_values_on_a_bound_there():
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(1.0, 1.0, size=(3, 40, 5, 2)))
    x[:, :15, :, 0] = 0.0  # exact zeros (an atom) in channel 0
    bounds = (np.array([0.0, 0.0]), np.array([np.inf, 2.0]))
    x[..., 1] = np.minimum(x[..., 1], 2.0)
    for spread in (0.5, 1.5, 3.0):
        w = widen(x, spread, bounds=bounds)
        assert (w >= 0).all() and (w[..., 1] <= 2.0).all(), spread
        np.testing.assert_array_equal(w[:, :15, :, 0], 0.0)  # zeros stay zeros
        plain = widen(x, spread)
        if spread > 1:
            assert (plain < 0).any() and (plain[..., 1] > 2.0).any()  # plain widening leaves it
        else:
            assert (plain[:, :15, :, 0] > 0).all()  # plain narrowing lifts the zeros off 0
        inside = (plain > 0) & (plain < 2.0) & (x > 0) & (x < 2.0)
        np.testing.assert_allclose(w[inside], plain[inside])  # inside: the plain widening


# ---------------------------------------------------------------------------- forecaster
@pytest.fixture(scope="module")
def frame():
    """Two items, hourly: solar (0 at night, a non-negative channel with many zeros), temp
    (signed) and a known-future action u."""
    rng = np.random.default_rng(0)
    n = 24 * 6
    t = np.arange(n)
    rows = []
    for k, item in enumerate(["a", "b"]):
        day = np.clip(np.sin((t % 24 - 6) / 12 * np.pi), 0, None)
        rows.append(
            pd.DataFrame(
                {
                    "item_id": item,
                    "timestamp": pd.date_range("2022-03-01", periods=n, freq="h"),
                    "solar": day * (5 + k + rng.random(n)),
                    "temp": np.sin(t / 24 * 2 * np.pi) + 0.5 * rng.standard_normal(n) + k,
                    "u": rng.random(n),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _fit(frame, **kw):
    opts = dict(
        prediction_length=H, context_length=L, freq="h", patch_size=4, n_bins=32, d_model=32,
        n_layers=1, n_heads=2, batch_size=8, max_steps=4, progress=False, calibrate=False,
        future_covariates=["u"],
    )  # fmt: skip
    f = Forecaster(**{**opts, **kw})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f.fit(frame, target=["solar", "temp"])


@pytest.fixture(scope="module", params=["masked", "flow", "independent"])
def fitted(request, frame):
    """A barely trained forecaster (its paths scatter widely) in each mode, domain auto."""
    if request.param == "independent":
        return _fit(frame, channels="independent")
    return _fit(frame, mode=request.param)


def _future(frame, horizon=H):
    rows = []
    for item, g in frame.groupby("item_id"):
        ts = pd.date_range(g.timestamp.max(), periods=horizon + 1, freq="h")[1:]
        rows.append(pd.DataFrame({"item_id": item, "timestamp": ts, "u": 0.5}))
    return pd.concat(rows, ignore_index=True)


def test_no_sample_leaves_the_domain_after_predict_backtest_and_widening(fitted, frame):
    assert fitted.model.cfg.domain == [_dom(lower=0.0, lower_atom=True), _dom()]
    fc = fitted.predict(frame, num_samples=16, future=_future(frame))
    assert (fc.samples[..., 0] >= 0).all()
    for spread in (1.0, 0.6, 2.5, 30.0):
        bt = fitted.backtest(frame, windows=3, num_samples=16, spread=spread)
        solar = bt["samples"][..., 0]
        assert (solar >= 0).all(), (spread, solar.min())
    assert (solar == 0).any()  # values widened beyond the bound land exactly on it
    # the same model without the domain leaves it: the checks above can fail
    dom, fitted.model.cfg.domain = fitted.model.cfg.domain, []
    try:
        raw = fitted.backtest(frame, windows=3, num_samples=16, spread=30.0)["samples"]
    finally:
        fitted.model.cfg.domain = dom
    assert (raw[..., 0] < 0).any()
    assert (raw[..., 1] < 0).any()  # the signed channel stays free


def test_rollouts_with_spread_stay_in_the_domain(fitted, frame):
    hist = frame[frame.item_id == "a"]
    plans = {name: _future(hist, 2 * H).assign(u=v) for name, v in (("low", 0.0), ("hi", 1.0))}
    sc = rollout(fitted, hist, plans, horizon=2 * H, num_samples=8, spread=3.0)
    assert (sc.samples["a"][..., 0] >= 0).all()


def test_calibration_fits_the_spread_on_paths_kept_in_the_domain(frame):
    f = _fit(frame, calibrate=True, calibration="spread", validation_per_series=2)
    bt = f.backtest(frame, windows=2, num_samples=16)
    assert f.spread != 1.0 and (bt["samples"][..., 0] >= 0).all()


def test_a_loaded_model_keeps_its_bounds(tmp_path, frame):
    f = _fit(frame, domain={"temp": [-0.5, 1.5]})
    assert f.model.cfg.domain[1] == _dom(lower=-0.5, upper=1.5)
    g = Forecaster.load(f.save(tmp_path / "m"))
    assert g.config.domain == {"temp": [-0.5, 1.5]}
    assert g.model.cfg.domain == f.model.cfg.domain
    a = f.predict(frame, num_samples=8, seed=2, future=_future(frame)).samples
    b = g.predict(frame, num_samples=8, seed=2, future=_future(frame)).samples
    np.testing.assert_array_equal(a, b)
    assert (b[..., 0] >= 0).all() and (b[..., 1] >= -0.5).all() and (b[..., 1] <= 1.5).all()


@pytest.mark.learning
def test_exact_zeros_where_zero_inflated_data_has_them():
    """Learning test on SYNTHETIC zero-inflated data: y = 0 on night hours (half the day) and
    about 50 + noise by day. After a short fit, at least half of the samples of night cells are
    exactly 0 (the data: all of them), and almost no day sample is (the data: none)."""
    rng = np.random.default_rng(1)
    n = 24 * 40
    t = np.arange(n)
    day = np.clip(np.sin((t % 24 - 6) / 12 * np.pi), 0, None)
    y = day * np.clip(50 + 10 * rng.standard_normal(n), 0, None)
    df = pd.DataFrame(
        {"item_id": "a", "timestamp": pd.date_range("2022-01-01", periods=n, freq="h"), "y": y}
    )
    f = Forecaster(
        prediction_length=12, context_length=48, freq="h", patch_size=8, n_bins=64, d_model=32,
        n_layers=1, n_heads=2, batch_size=16, max_steps=120, lr=3e-3, progress=False,
        calibrate=False,
    )  # fmt: skip
    f.fit(df, target="y")
    bt = f.backtest(df, windows=8, num_samples=50)
    s, truth = bt["samples"][..., 0], bt["y"][..., 0]  # [N, S, H], [N, H]
    night = np.broadcast_to((truth == 0)[:, None], s.shape)
    sunny = np.broadcast_to((truth > 20)[:, None], s.shape)
    assert (s >= 0).all()
    assert (s[night] == 0).mean() >= 0.5, (s[night] == 0).mean()
    assert (s[sunny] == 0).mean() <= 0.1, (s[sunny] == 0).mean()
