"""A tiny base (random weights, a non-zero head so that its outputs depend on its inputs) for
the tests of tsdiff.pretrained and its users: what the packaged base is, at a size that runs in
milliseconds. ``packaged_tiny_base`` makes it the package's base for one test."""

import pytest
import torch

import tsdiff.pretrained
from tsdiff.model import NumericDenoiser
from tsdiff.model_config import TSModelConfig
from tsdiff.pretrained import Base, save_base


def tiny_base() -> Base:
    cfg = TSModelConfig(
        context_length=32, prediction_length=16, patch_size=8, n_bins=32, d_model=32,
        n_layers=1, n_heads=2, time_features=[],
    )  # fmt: skip
    torch.manual_seed(0)
    model = NumericDenoiser(cfg)
    torch.nn.init.normal_(model.head.weight, std=0.3)
    return Base(cfg, model.eval(), {"name": "tiny-test-base"})


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "base"
    save_base(path, tiny_base())
    return path


@pytest.fixture
def packaged_tiny_base(base_dir, monkeypatch):
    """The tiny base stands in for the packaged one (``init="base"``, ``from_pretrained()``)."""
    monkeypatch.setattr(tsdiff.pretrained, "BASE_DIR", base_dir)
    return base_dir
