"""The base shipped in the package: it loads without a download, says what it was trained on,
and forecasts a frame it never saw, inside the data's domain."""

import numpy as np

from tsdiff.data import load_tmy3
from tsdiff.forecaster import Forecaster
from tsdiff.pretrained import BASE_DIR, load_base


def test_the_packaged_base_loads_and_records_its_pretraining():
    base = load_base()
    assert base.path == BASE_DIR and base.max_horizon == 64
    assert base.meta["name"] == "tsdiff-base-v1" and base.meta["stopped_by"] == "max_steps"
    assert base.meta["windows_seen"] == base.meta["steps"] * 64
    held_out = {"m1_yearly", "gasoline", "bikesharing", "taylor", "elecdemand", "elecdaily"}
    assert not held_out & set(base.meta["corpus"])  # the zero-shot sets were never trained on
    assert sum(p.stat().st_size for p in BASE_DIR.iterdir()) < 20e6
    assert load_base("base").path == BASE_DIR  # the name fit(init="base") gives it


def test_the_packaged_base_forecasts_zero_shot_inside_the_domain():
    df = load_tmy3()[["item_id", "timestamp", "ghi", "temp_air"]].iloc[:1000]
    f = Forecaster.from_pretrained(prediction_length=24, freq="h")
    fc = f.predict(df, num_samples=20)
    assert fc.samples.shape == (1, 20, 24, 2) and np.isfinite(fc.samples).all()
    assert fc.samples[..., 0].min() >= 0.0  # irradiance: non-negative history, paths
