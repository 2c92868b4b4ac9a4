"""tsdiff.store and the sectioned config: checkpoints written before the config was split into
sections still load and forecast as before; flat keyword arguments and sections agree."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdiff import Forecaster, ForecasterConfig
from tsdiff.config import SECTIONS, ModelSection, SamplerSection
from tsdiff.store import load_checkpoint

DATA = Path(__file__).parent / "data"
# written by the code before the split (commit 6b710b6): Forecaster(prediction_length=4,
# context_length=16, freq="h", patch_size=4, n_bins=16, d_model=16, n_layers=1, n_heads=2,
# batch_size=4, max_steps=2, progress=False, calibrate=False, dropout=0.1, order="margin",
# steps=2).fit(frame(), target=["x"]).save(...); the samples are its predict(frame(),
# num_samples=3, seed=0). Regenerate both if a deliberate change alters forecasts.
OLD = DATA / "ckpt_before_sections"


def frame() -> pd.DataFrame:
    t = np.arange(80)
    return pd.DataFrame(
        {"item_id": "a", "timestamp": pd.date_range("2022-03-01", periods=80, freq="h"),
         "x": np.sin(t / 4), "w": t * 0.1}
    )  # fmt: skip


def test_a_checkpoint_from_before_the_sections_loads_and_forecasts_the_same():
    f = Forecaster.load(OLD)
    c = f.config
    assert (c.prediction_length, c.dropout, c.order, c.steps, c.calibrate) == (
        4, 0.1, "margin", 2, False,
    )  # fmt: skip
    assert f.model.cfg.dropout == 0.1 and f.columns.targets == ["x"]
    samples = f.predict(frame(), num_samples=3, seed=0).samples
    # the saved samples came from float32 decoding; values are now scaled and decoded in float64
    # (affine equivariance, tsdiff.encoding.target_scale): equal to float32's precision
    np.testing.assert_allclose(
        samples, np.load(DATA / "ckpt_before_sections_samples.npy"), rtol=2e-6, atol=1e-6
    )


def test_save_writes_the_flat_fields_and_loads_back(tmp_path):
    f = Forecaster.load(OLD)
    f.save(tmp_path / "ck")
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.config == f.config and ck.columns == f.columns
    text = (tmp_path / "ck" / "config.json").read_text()
    assert '"dropout": 0.1' in text and '"model_section"' not in text


def test_sections_partition_the_flat_config():
    cfg = ForecasterConfig(prediction_length=12, freq="D", dropout=0.2, max_steps=7, steps=3)
    names = [f for s in SECTIONS for f in s.__dataclass_fields__]
    assert sorted(names) == sorted(ForecasterConfig.__dataclass_fields__)  # each field once
    assert len(names) == len(set(names))
    assert cfg.section(ModelSection).dropout == 0.2 and cfg.section(SamplerSection).steps == 3
    assert (
        Forecaster(prediction_length=12, freq="D", dropout=0.2, max_steps=7, steps=3).config == cfg
    )
    with pytest.raises(ValueError, match="dropout"):
        ModelSection(dropout=1.5)
    with pytest.raises(ValueError, match="order"):
        ForecasterConfig(order="sorted")
