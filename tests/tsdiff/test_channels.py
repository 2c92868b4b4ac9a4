"""Channel independence (``channels="independent"``): each target channel is its own univariate
series for one shared model, which knows the channel by a learned embedding."""

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff import Forecaster
from tsdiff.data.windows import make_window, merge_channels, split_channels, split_series
from tsdiff.forecaster import ForecasterConfig

H, L = 4, 16


@pytest.fixture(scope="module")
def data():
    t = np.arange(72)
    rows = []
    for k, item in enumerate(["a", "b"]):
        ts = pd.date_range("2022-03-01", periods=len(t), freq="h")
        rows.append(
            pd.DataFrame(
                {"item_id": item, "timestamp": ts, "x": np.sin(t / 4) + k, "w": t * 0.1 + k,
                 "v": np.cos(t / 3) * 2}
            )
        )  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def fit(data, channels: str, target=("x", "w", "v")) -> Forecaster:
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    f = Forecaster(
        prediction_length=H, context_length=L, freq="h", patch_size=4, n_bins=32, d_model=32,
        n_layers=1, n_heads=2, batch_size=8, max_steps=3, progress=False, channels=channels,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f.fit(data, target=list(target))


@pytest.fixture(scope="module")
def independent(data):
    return fit(data, "independent")


def test_split_and_merge_channels_are_inverse(independent, data):
    series = independent._series(data)
    windows = [make_window(s, 40, L, H, "h") for s in series]  # 2 windows x 3 channels
    split = split_channels(windows)
    assert len(split) == 6 and split[4]["ctx"].shape == (L, 1)
    np.testing.assert_array_equal(split[4]["ctx"][:, 0], windows[1]["ctx"][:, 1])  # window-major
    assert [int(w["static_cat"][-1]) for w in split] == [0, 1, 2, 0, 1, 2]
    np.testing.assert_array_equal(split[5]["tf_fut"], windows[1]["tf_fut"])  # shared features
    paths = torch.stack([torch.from_numpy(w["fut"]) for w in split])[:, None]  # [6, 1, H, 1]
    merged = merge_channels(paths, 3)  # [2, 1, H, 3]
    for i in range(2):
        np.testing.assert_array_equal(merged[i, 0].numpy(), windows[i]["fut"])
    uni = split_series(series)
    assert len(uni) == 6 and uni[5].target.shape == (72, 1) and uni[5].static_cat.tolist() == [2]


def test_independent_model_is_univariate_with_a_channel_embedding(independent, data):
    cfg = independent.model.cfg
    assert cfg.n_channels == 1 and cfg.static_cardinalities == [3]
    fc = independent.predict(data, num_samples=5, seed=0)
    assert fc.samples.shape == (2, 5, H, 3) and np.isfinite(fc.samples).all()


def test_a_channel_forecast_ignores_the_other_channels_only_when_independent(independent, data):
    """Change channel w's history (not by an affine map, which the per-channel scaling would
    undo): the x and v paths stay the same draw for draw (independent), but not for a joint
    model, whose channels attend to each other."""
    other = data.copy()
    other["w"] = np.random.default_rng(0).normal(size=len(other))
    joint = fit(data, "joint")
    # Three training steps leave the weights near their small init (std 0.02) and the head near
    # zero: w moved x's logits by ~1e-5, and whether that flipped one of the 64 drawn bins was a
    # near-tie (it flipped or not with the training data's details). Large random weights make
    # the cross-channel attention visible in the paths; the independent model is left as trained.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in joint.model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.5, generator=g)
    for f, same in ((independent, True), (joint, False)):
        a = f.predict(data, num_samples=8, seed=3).samples
        b = f.predict(other, num_samples=8, seed=3).samples
        for c in (0, 2):  # x, v
            assert np.array_equal(a[..., c], b[..., c]) == same, (f.config.channels, c)
        assert not np.array_equal(a[..., 1], b[..., 1])


def test_independent_round_trips_through_save_and_load(independent, data, tmp_path):
    independent.save(tmp_path / "ck")
    g = Forecaster.load(tmp_path / "ck")
    assert g.config.channels == "independent" and g.independent
    a = independent.predict(data, num_samples=4, seed=1).samples
    b = g.predict(data, num_samples=4, seed=1).samples
    np.testing.assert_allclose(a, b)


def test_one_channel_independent_is_the_joint_model(data):
    f = fit(data, "independent", target=("x",))
    assert not f.independent
    assert f.model.cfg.n_channels == 1 and f.model.cfg.static_cardinalities == []


def test_unknown_channel_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="channels: expected one of .*'shared'"):
        ForecasterConfig(channels="shared")
