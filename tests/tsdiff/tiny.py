"""Small shared builders of the tsdiff tests: a one-layer denoiser and a noisy sine frame."""

import numpy as np
import pandas as pd
import torch

from tsdiff.model import NumericDenoiser, TSModelConfig


def tiny_model(C=2, H=6, L=16):
    cfg = TSModelConfig(
        context_length=L, prediction_length=H, n_channels=C, patch_size=4, n_bins=32,
        d_model=32, n_layers=1, n_heads=2, n_time_features=4,
    )  # fmt: skip
    torch.manual_seed(0)
    return NumericDenoiser(cfg)


def sine_frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2021-01-01", periods=n, freq="h")
    base = np.sin(np.arange(n) * 2 * np.pi / 24)
    return pd.DataFrame(
        {"item_id": "a", "timestamp": t, "y": base + 0.3 * rng.standard_normal(n), "x": 2 * base}
    )
