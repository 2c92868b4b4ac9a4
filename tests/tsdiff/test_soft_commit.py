"""Soft, revisable commitment (DMax-style) for the masked numeric mode: sample_paths(commit="soft")."""

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff.data.frames import Columns, frame_to_series
from tsdiff.data.windows import collate, make_window
from tsdiff.model import NumericDenoiser, TSModelConfig
from tsdiff.sampling import sample_paths
from tsdiff.soft_commit import draw_bins, local_mass

torch.set_num_threads(1)


def _setup(C=2, H=6, L=16):
    cfg = TSModelConfig(
        context_length=L, prediction_length=H, n_channels=C, patch_size=4, n_bins=32,
        d_model=32, n_layers=1, n_heads=2, n_time_features=4,
    )  # fmt: skip
    torch.manual_seed(0)
    m = NumericDenoiser(cfg)
    torch.nn.init.normal_(m.head.weight, std=0.5)  # a non-uniform predictive distribution
    n = 400
    rng = np.random.default_rng(0)
    base = np.sin(np.arange(n) * 2 * np.pi / 24)
    df = pd.DataFrame({
        "item_id": "a", "timestamp": pd.date_range("2021-01-01", periods=n, freq="h"),
        "y": base + 0.3 * rng.standard_normal(n), "x": 2 * base,
    })  # fmt: skip
    ser = frame_to_series(df, Columns(targets=["y", "x"]), "h")
    return m, collate([make_window(ser[0], e, L, H, "h") for e in (100, 200, 300)])


def test_soft_commit_shape_finite_nfe_and_seeded():
    m, b = _setup()
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    s1, st = sample_paths(m, b, 5, steps=3, commit="soft", generator=g(0))
    assert s1.shape == (3, 5, 6, 2) and torch.isfinite(s1).all()
    assert st.nfe == 3 and st.committed == 5 * 3 * 6 * 2  # every cell drawn once, same NFE
    s2, _ = sample_paths(m, b, 5, steps=3, commit="soft", generator=g(0))
    assert torch.equal(s1, s2)
    s3, _ = sample_paths(m, b, 5, steps=3, commit="soft", generator=g(1))
    assert not torch.equal(s1, s3)
    sb, stb = sample_paths(m, b, 5, steps=6, block_length=2, commit="soft", generator=g(0))
    assert sb.shape == (3, 5, 6, 2) and torch.isfinite(sb).all() and stb.nfe == 6
    h, _ = sample_paths(m, b, 5, steps=3, generator=g(0))  # the default stays the hard sampler
    assert torch.equal(h, sample_paths(m, b, 5, steps=3, commit="hard", generator=g(0))[0])


def test_soft_first_step_runs_once_per_window_with_the_same_logits():
    """As in the hard sampler, the first call (every path all-MASK) sees one row per window; its
    repeated logits equal what every path gets when the network runs on all of them."""
    m, b = _setup()
    rows, logits = [], []

    def record(module, inputs, out):  # returns None: the output is left as it is
        rows.append(out.shape[0])
        logits.append(out)

    hook = m.head.register_forward_hook(record)
    try:
        sample_paths(m, b, 5, steps=3, commit="soft", generator=torch.Generator().manual_seed(0))
    finally:
        hook.remove()
    assert rows == [3, 15, 15]
    s = m.scale_batch(b)
    kvs = m.repeat_kv(m.encode_context(s), 5)
    st = m.horizon_static(s).repeat_interleave(5, 0)
    full = m.horizon_logits(torch.full((15, 12), m.encoder.mask_id), st, kvs,
                            m.horizon_positions(15, st.device))  # fmt: skip
    torch.testing.assert_close(
        full, logits[0].float().repeat_interleave(5, 0), atol=1e-5, rtol=1e-5
    )


def test_soft_commit_rejects_value_dependent_order_and_unknown_mode():
    m, b = _setup()
    with pytest.raises(ValueError, match="order"):
        sample_paths(m, b, 2, order="prob", commit="soft")
    with pytest.raises(ValueError, match="commit"):
        sample_paths(m, b, 2, commit="medium")


def test_draws_follow_the_softmax_and_local_mass():
    logits = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4])).expand(20000, 4)
    bins = draw_bins(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(bins, minlength=4).double() / 20000
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64), atol=0.015)
    mass = local_mass(logits[:4], torch.tensor([0, 1, 2, 3]), radius=1)
    assert torch.allclose(mass, torch.tensor([0.3, 0.6, 0.9, 0.7]), atol=1e-6)
