"""Fits that start from the base: Forecaster(..., init="base") / fit(df, init="base"), with LoRA
adapters (saved apart from the base, small) or all weights, on the usual training path."""

import numpy as np
import pandas as pd
import pytest
import torch

from lm_core.checkpoint import CheckpointError
from tests.tsdiff.conftest import tiny_base
from tests.tsdiff.tiny import sine_frame
from tsdiff.forecaster import Forecaster
from tsdiff.pretrained import save_base

TRAIN = dict(max_steps=6, batch_size=8, max_time_s=None, progress=False, calibrate=False)


def future(df, H=6):
    idx = pd.date_range(df["timestamp"].iloc[-1], periods=H + 1, freq="h")[1:]
    return pd.DataFrame({"item_id": "a", "timestamp": idx, "x": np.zeros(H)})


def test_lora_fine_tune_trains_adapters_and_saves_only_them(packaged_tiny_base, tmp_path):
    df = sine_frame()
    f = Forecaster(prediction_length=6, freq="h", future_covariates=["x"], finetune="lora", **TRAIN)
    f.fit(df, target="y", init="base")
    init = f.history["init"]
    assert init["finetune"] == "lora" and "step_proj.weight" in init["new_inputs"]
    assert f.config.context_length == 32 and f.config.channels == "independent"
    frozen = dict(f.model.named_parameters())["backbone.blocks.0.attn.q_proj.base_layer.weight"]
    torch.testing.assert_close(frozen, tiny_base().model.backbone.blocks[0].attn.q_proj.weight)
    f.save(tmp_path / "ft")
    files = {p.name: p.stat().st_size for p in (tmp_path / "ft").iterdir()}
    assert "model.safetensors" not in files and "adapter.safetensors" in files
    full = sum(p.numel() for p in tiny_base().model.parameters()) * 4
    assert files["adapter.safetensors"] < full / 2
    a = f.predict(df, future=future(df), num_samples=8, seed=1).samples
    g = Forecaster.load(tmp_path / "ft")
    np.testing.assert_allclose(g.predict(df, future=future(df), num_samples=8, seed=1).samples, a)


def test_an_adapter_on_another_base_is_refused_in_one_line(packaged_tiny_base, tmp_path):
    f = Forecaster(prediction_length=6, freq="h", finetune="lora", **TRAIN)
    f.fit(sine_frame(), target="y", init="base")
    f.save(tmp_path / "ft")
    other = tiny_base()
    torch.nn.init.normal_(other.model.head.weight)  # the packaged base changed since
    save_base(packaged_tiny_base, other)
    with pytest.raises(CheckpointError, match="trained on base 'tiny-test-base' with digest"):
        Forecaster.load(tmp_path / "ft")


def test_the_default_full_fine_tune_trains_and_saves_the_whole_model(packaged_tiny_base, tmp_path):
    f = Forecaster(prediction_length=6, freq="h", **TRAIN)
    f.fit(sine_frame(), target=["y", "x"], init="base")
    assert all(p.requires_grad for p in f.model.parameters())
    f.save(tmp_path / "full")
    assert (tmp_path / "full" / "model.safetensors").is_file()
    assert Forecaster.load(tmp_path / "full").predict(sine_frame(), num_samples=4).samples.shape \
        == (1, 4, 6, 2)  # fmt: skip


def test_a_shape_setting_that_contradicts_the_base_is_refused(packaged_tiny_base):
    f = Forecaster(prediction_length=6, freq="h", d_model=64, **TRAIN)
    with pytest.raises(ValueError, match="d_model=64: a fit with init='base' takes the base's"):
        f.fit(sine_frame(), target="y", init="base")
    with pytest.raises(ValueError, match="finetune: expected one of"):
        Forecaster(prediction_length=6, freq="h", finetune="half")
