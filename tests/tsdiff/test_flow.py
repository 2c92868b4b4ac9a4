"""tsdiff.flow: the continuous flow mode's loss and Euler sampler."""

import torch

from tests.tsdiff.tiny import sine_frame
from tsdiff.data.frames import Columns, frame_to_series
from tsdiff.data.windows import collate, make_window
from tsdiff.flow import flow_loss
from tsdiff.model import NumericDenoiser, TSModelConfig
from tsdiff.sampling import sample_paths


def test_flow_mode_trains_and_samples_continuous_paths():
    """Flow mode: same Transformer, continuous values; Euler steps set the NFE."""
    cfg = TSModelConfig(
        context_length=16, prediction_length=6, n_channels=2, patch_size=4, d_model=32,
        n_layers=1, n_heads=2, n_time_features=4, mode="flow",
    )  # fmt: skip
    torch.manual_seed(0)
    m = NumericDenoiser(cfg)
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], e, 16, 6, "h") for e in (100, 200)])
    loss, _ = flow_loss(m, b, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and m.value_in.weight.grad is not None
    torch.nn.init.normal_(m.head.weight, std=0.02)  # the head starts at zero; give it a slope
    s, stats = sample_paths(m, b, 9, steps=4, generator=torch.Generator().manual_seed(1))
    assert s.shape == (2, 9, 6, 2) and torch.isfinite(s).all()
    assert stats.nfe == 4
    assert len(torch.unique(s)) > 50  # continuous, not lattice-valued
