"""Settings the user did not give are decided from the data (tsdiff.defaults): the rules on a
few data shapes, explicit settings win, and a fitted forecaster records and keeps its decisions."""

import warnings

import numpy as np
import pytest
import torch

from tests.tsdiff.tiny import sine_frame
from tsdiff import Forecaster
from tsdiff.config import ForecasterConfig
from tsdiff.defaults import AUTO_FIELDS, DataShape, resolve, unresolved


def decide(n_series, length, n_channels, freq, H, **given):
    shape = DataShape(n_series, (length,) * n_series, n_channels, freq, H)
    cfg, decided = resolve(ForecasterConfig(prediction_length=H, freq=freq, **given), shape)
    return cfg, decided


# (series, length, channels, freq, H) -> (context, patch, channels, batch, max_steps)
RULES = {
    "one short monthly series": ((1, 168, 1, "MS", 12), (36, 4, "joint", 32, 300)),
    "us_employment-like": ((148, 600, 1, "MS", 12), (36, 4, "joint", 256, 4000)),
    "elecdemand-like": ((1, 16000, 1, "30min", 48), (336, 8, "joint", 64, 4000)),
    "tmy3-like": ((1, 8000, 10, "h", 24), (168, 8, "independent", 128, 4000)),
    "appliances-like": ((1, 19000, 6, "10min", 36), (144, 8, "independent", 128, 4000)),
    "many multichannel series": ((50, 2000, 3, "h", 24), (168, 8, "joint", 64, 4000)),
    "two channels": ((1, 8000, 2, "h", 24), (168, 8, "joint", 64, 4000)),
    "minutely": ((1, 20000, 1, "min", 60), (512, 8, "joint", 64, 4000)),
    "daily": ((20, 1000, 1, "D", 30), (90, 8, "joint", 128, 4000)),
    "short yearly series": ((100, 20, 1, "YS", 6), (14, 4, "joint", 256, 300)),
}


@pytest.mark.parametrize("case", RULES, ids=list(RULES))
def test_rules_decide_from_the_shape_of_the_data(case):
    shape, (ctx, patch, channels, batch, steps) = RULES[case]
    cfg, decided = decide(*shape)
    got = (cfg.context_length, cfg.patch_size, cfg.channels, cfg.batch_size, cfg.max_steps)
    assert got == (ctx, patch, channels, batch, steps)
    assert (cfg.d_model, cfg.n_layers) == (128, 3)  # the CPU size of every benchmark set
    assert set(decided) == set(AUTO_FIELDS) and not unresolved(cfg)


def test_a_short_series_is_not_given_a_context_longer_than_itself():
    cfg, _ = decide(1, 60, 1, "h", 24)  # the hourly rule wants a week (168)
    assert cfg.context_length == 60 - 24


def test_explicit_settings_are_never_overridden_and_feed_the_other_rules():
    given = dict(context_length=40, channels="joint", batch_size=8, d_model=16, n_layers=1)
    cfg, decided = decide(1, 8000, 10, "h", 24, **given)
    assert {k: getattr(cfg, k) for k in given} == given
    assert set(decided) == {"patch_size", "max_steps"}
    assert cfg.patch_size == 4  # the patch rule of the given context (<= 64 steps)
    # the joint model's batch rule would differ from the independent one decided without it
    assert (
        decide(1, 8000, 10, "h", 24)[0].batch_size
        != decide(1, 8000, 10, "h", 24, channels="joint")[0].batch_size
    )


def test_a_fit_records_its_decisions_and_a_loaded_model_keeps_them(tmp_path):
    torch.set_num_threads(1)
    data = sine_frame(300)
    f = Forecaster(
        prediction_length=6, freq="h", n_bins=16, d_model=16, n_layers=1, n_heads=2,
        max_steps=3, progress=False,
    )  # fmt: skip
    assert unresolved(f.config) == ["context_length", "patch_size", "channels", "batch_size"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f.fit(data, target=["y", "x"])
    d = f.history["defaults"]
    assert d == {"context_length": 168, "patch_size": 8, "channels": "joint", "batch_size": 64}
    assert {k: getattr(f.config, k) for k in d} == d and not unresolved(f.config)
    g = Forecaster.load(f.save(tmp_path / "ckpt"))
    assert g.config == f.config and g.history["defaults"] == d
    a = f.predict(data, num_samples=4, seed=1).samples
    np.testing.assert_array_equal(a, g.predict(data, num_samples=4, seed=1).samples)
    # a fitted config refitted decides nothing: every setting is now given
    assert resolve(g.config, DataShape(1, (300,), 2, "h", 6))[1] == {}


def test_auto_fields_take_none_and_still_check_given_values():
    cfg = ForecasterConfig()
    assert all(getattr(cfg, name) is None for name in AUTO_FIELDS)
    assert cfg.max_time_s == 300.0
    for bad in (dict(context_length=0), dict(batch_size=-1), dict(channels="both"),
                dict(max_time_s=0), dict(d_model=1.5)):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            ForecasterConfig(**bad)
