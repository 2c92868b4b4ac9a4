"""TSDiffEstimator / TSDiffPredictor behave like any GluonTS model: train on a ListDataset,
SampleForecasts with the right shapes and start periods, evaluate_model, serialize round trip."""

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from gluonts.dataset.common import ListDataset
from gluonts.dataset.split import split
from gluonts.ev.metrics import MSE, MeanWeightedSumQuantileLoss
from gluonts.model import evaluate_model
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor

from tsdiff.data.frames import DataError
from tsdiff.gluonts import TSDiffEstimator, TSDiffPredictor, entry_to_series

H, L, T = 4, 16, 80
SMALL = dict(
    prediction_length=H,
    context_length=L,
    patch_size=4,
    n_bins=32,
    d_model=32,
    n_layers=1,
    n_heads=2,
    batch_size=8,
    max_steps=4,
    trainer_kwargs={"enable_progress_bar": False},
)


def series(k: int) -> np.ndarray:
    t = np.arange(T + H)
    y = 5 + k + np.sin(2 * np.pi * t / 24)
    y[10:13] = np.nan  # a gap: unobserved, never zero
    return y


@pytest.fixture(scope="module")
def univariate():
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    full = ListDataset(
        [
            {
                "start": "2021-01-01 00:00",
                "target": series(k),
                "item_id": f"s{k}",
                "feat_dynamic_real": [np.arange(T + H) % 24 / 24.0],
                "feat_static_cat": [k],  # ignored: num_feat_static_cat = 0
            }
            for k in range(3)
        ],
        freq="h",
    )
    train, test_gen = split(full, offset=-H)
    est = TSDiffEstimator(freq="h", num_feat_dynamic_real=1, calibration="both", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = est.train(train, validation_data=train)
    return predictor, test_gen.generate_instances(prediction_length=H), full


def test_forecasts_are_sample_forecasts(univariate):
    predictor, test, full = univariate
    fcs = list(predictor.predict(test.input, num_samples=10))
    assert len(fcs) == 3 and all(isinstance(f, SampleForecast) for f in fcs)
    f = fcs[0]
    assert f.samples.shape == (10, H) and np.isfinite(f.samples).all()
    assert f.item_id == "s0"
    assert f.start_date == pd.Period("2021-01-01 00:00", freq="h") + T
    assert f.quantile(0.5).shape == (H,)


def test_evaluate_model(univariate):
    predictor, test, _ = univariate
    metrics = evaluate_model(
        predictor, test_data=test, metrics=[MSE(), MeanWeightedSumQuantileLoss([0.1, 0.5, 0.9])]
    )
    assert np.isfinite(metrics.to_numpy()).all()


def test_serialize_round_trip(univariate, tmp_path):
    predictor, test, _ = univariate
    predictor.serialize(tmp_path)
    loaded = Predictor.deserialize(tmp_path)
    assert isinstance(loaded, TSDiffPredictor)
    a = [f.samples for f in predictor.predict(test.input, num_samples=6, seed=5)]
    b = [f.samples for f in loaded.predict(test.input, num_samples=6, seed=5)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    f, g = predictor.forecaster, loaded.forecaster  # both calibrations were fitted and kept
    assert "calibration" in f.history and "spread_calibration" in f.history
    assert (g.temperature, g.spread) == (f.temperature, f.spread)
    assert (tmp_path / "tsdiff" / "model.safetensors").is_file()
    assert not list(tmp_path.rglob("*.pkl"))


def test_multivariate_shapes():
    C = 2
    data = ListDataset(
        [
            {
                "start": "2020-01",
                "target": np.stack([np.arange(40.0), np.cos(np.arange(40.0))]),
                "past_feat_dynamic_real": [np.arange(40.0)],
                "feat_static_real": [1.5],
            }
        ],
        freq="M",
        one_dim_target=False,
    )
    est = TSDiffEstimator(
        freq="M",
        target_dim=C,
        num_past_feat_dynamic_real=1,
        num_feat_static_real=1,
        calibrate=False,
        **{**SMALL, "max_steps": 2},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = est.train(data)
    (f,) = predictor.predict(data, num_samples=5)
    assert f.samples.shape == (5, H, C) and np.isfinite(f.samples).all()
    assert f.start_date == pd.Period("2020-01", freq="M") + 40


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"start": "2021-01-01", "target": [1.0, np.inf]}, "infinite"),
        ({"start": "2021-01-01", "target": [np.nan, np.nan]}, "every target value is missing"),
        ({"start": "2021-01-01", "target": [[1.0, 2.0]] * 3}, "expected"),
        ({"start": "2021-01-01", "target": ["a", "b"]}, "not numeric"),
        (
            {"start": "2021-01-01", "target": [1.0, 2.0], "feat_dynamic_real": [[1.0]]},
            "feat_dynamic_real",
        ),
    ],
)
def test_bad_entries_name_the_item(entry, message):
    with pytest.raises(DataError, match=message):
        entry_to_series(
            dict(entry, item_id="x"), "h", num_feat_dynamic_real="feat_dynamic_real" in entry
        )


def test_too_short_training_data():
    data = ListDataset([{"start": "2021-01-01", "target": [1.0, 2.0]}], freq="h")
    with pytest.raises(DataError, match="prediction_length"):
        TSDiffEstimator(freq="h", **SMALL).train(data)


def test_feat_static_cat_reaches_the_denoiser_and_survives_serialization(tmp_path):
    """feat_static_cat codes select per-field embeddings: changing an item's code changes its
    forecast (same seed), codes outside the cardinality are a DataError naming the item, and a
    serialized predictor keeps the fields."""
    data = ListDataset(
        [{"start": "2021-01-01", "target": series(k), "item_id": f"s{k}",
          "feat_static_cat": [k, k % 2]} for k in range(3)],
        freq="h",
    )  # fmt: skip
    est = TSDiffEstimator(
        freq="h", num_feat_static_cat=2, cardinality=[3, 2], calibrate=False, **SMALL
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = est.train(data)
    with torch.no_grad():  # the embedding tables are small at init: make them matter here
        for emb in predictor.forecaster.model.cat_emb:
            emb.weight.normal_(std=1.0)
    entry = dict(data[0])
    a = next(iter(predictor.predict([entry], num_samples=50, seed=1))).samples
    b = next(iter(predictor.predict([dict(entry, feat_static_cat=[2, 1])], 50, 1))).samples
    assert np.isfinite(a).all() and not np.allclose(a, b)
    with pytest.raises(DataError, match=r"item 's0'.*feat_static_cat\[0\] = 3"):
        list(predictor.predict([dict(entry, feat_static_cat=[3, 0])], num_samples=5))
    predictor.serialize(tmp_path)
    loaded = Predictor.deserialize(tmp_path)
    c = next(iter(loaded.predict([entry], num_samples=50, seed=1))).samples
    np.testing.assert_array_equal(a, c)


def test_cardinality_must_match_num_feat_static_cat():
    with pytest.raises(ValueError, match="cardinality"):
        TSDiffEstimator(freq="h", num_feat_static_cat=2, cardinality=[3], **SMALL)


def test_every_forecaster_option_reaches_the_model():
    """The estimator builds its model config where Forecaster.fit does (tsdiff.train), so the
    model options (dropout, mode, channels, scale_features, covariate_scaling) reach the
    trained denoiser, and the predictor samples with them (channel-independent flow paths)."""
    C = 2
    data = ListDataset(
        [{"start": "2021-01-01", "target": np.stack([series(k), 2 * series(k)]),
          "item_id": f"s{k}", "feat_dynamic_real": [np.arange(T + H) % 24 / 24.0]}
         for k in range(3)],
        freq="h",
        one_dim_target=False,
    )  # fmt: skip
    est = TSDiffEstimator(
        freq="h", target_dim=C, num_feat_dynamic_real=1, dropout=0.1, mode="flow",
        channels="independent", scale_features=True, covariate_scaling="global", **SMALL,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = est.train(data, validation_data=data)
    model = predictor.forecaster.model
    cfg = model.cfg
    assert (cfg.dropout, cfg.mode, cfg.scale_features) == (0.1, "flow", True)
    assert model.backbone.cfg.dropout == 0.1 and model.value_in is not None  # flow input layer
    assert cfg.n_channels == 1 and cfg.static_cardinalities == [C]  # the channel as a category
    assert cfg.covariate_scaling == "global" and len(cfg.future_cov_stats) == 1
    assert predictor.forecaster.independent
    entry = dict(data[0], target=data[0]["target"][:, :T])  # covariates known H steps ahead
    (f,) = predictor.predict([entry], num_samples=6)
    assert f.samples.shape == (6, H, C) and np.isfinite(f.samples).all()
    assert len(np.unique(f.samples)) > 20  # continuous (flow) values, not bin centres


def test_training_prints_nothing_of_lightnings(capfd):
    """The estimator trains as quietly as Forecaster.fit: no GPU/TPU lines, tips, checkpoint
    notes or warnings about the unused validation_step (issue 20)."""
    torch.set_num_threads(1)
    data = ListDataset([{"start": "2021-01-01", "target": series(k)} for k in range(2)], freq="h")
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TSDiffEstimator(freq="h", **{**SMALL, "max_steps": 2}).train(data)
    out, err = capfd.readouterr()
    for noise in ("available", "Tip", "global step", "stopped"):
        assert noise not in out + err, (out, err)
    assert not [str(w.message) for w in caught if "validation_step" in str(w.message)]
