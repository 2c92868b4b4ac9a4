"""Value encoding: context scaling (safe for constant / empty contexts) and asinh bins."""

import numpy as np
import pytest
import torch

from tsdiff.encoding import BinEncoder, context_scale, standardize, target_scale


def test_bins_round_trip_within_bin_width():
    enc = BinEncoder(n_bins=128, z_max=20.0)
    z = torch.linspace(-19.9, 19.9, 2001)
    ids = enc.encode(z)
    back = enc.decode(ids, generator=torch.Generator().manual_seed(0))
    edges = enc.bin_edges()
    width = edges[ids + 1] - edges[ids]
    assert (ids >= 0).all() and (ids < enc.n_bins).all()
    assert ((back - z).abs() <= width + 1e-5).all()
    assert (enc.encode(back) == ids).all()  # decoding stays inside its bin


def test_decode_is_not_lattice_valued():
    enc = BinEncoder(n_bins=16)
    ids = torch.full((1000,), 7)
    vals = enc.decode(ids, generator=torch.Generator().manual_seed(1))
    assert len(torch.unique(vals)) > 900  # continuous within the bin, not one value per bin
    lo, hi = enc.bin_edges()[7], enc.bin_edges()[8]
    assert (vals >= lo - 1e-6).all() and (vals <= hi + 1e-6).all()


def test_clipping_goes_to_end_bins():
    enc = BinEncoder(n_bins=32, z_max=5.0)
    ids = enc.encode(torch.tensor([-1e6, 1e6, 0.0]))
    assert ids.tolist()[:2] == [0, 31]


def test_context_scale_constant_and_empty():
    v = torch.full((2, 10, 3), 5.0)
    obs = torch.ones_like(v, dtype=torch.bool)
    obs[1] = False  # second window: nothing observed
    obs[0, :, 2] = False
    obs[0, 0, 2] = True  # a single observed point
    loc, scale = context_scale(v, obs)
    assert loc.shape == scale.shape == (2, 1, 3)
    assert torch.isfinite(scale).all() and (scale > 0).all()
    assert torch.allclose(loc[0], torch.full((1, 3), 5.0))
    assert torch.allclose(scale[0, 0], torch.full((3,), 0.05))  # 1e-2 * mean|y|
    assert (loc[1] == 0).all() and (scale[1] == 1).all()
    zeros = context_scale(torch.zeros(1, 4, 1), torch.ones(1, 4, 1, dtype=torch.bool))[1]
    assert zeros.item() > 0


def test_context_scale_ignores_unobserved_values():
    v = torch.tensor([[[1.0], [3.0], [np.nan], [1e9]]])
    obs = torch.tensor([[[True], [True], [False], [False]]])
    loc, scale = context_scale(torch.nan_to_num(v), obs)
    assert loc.item() == 2.0 and abs(scale.item() - 1.0) < 1e-6


def test_target_scale_is_the_float64_mean_and_std_without_a_floor():
    v = torch.tensor([[[1.0], [3.0], [np.nan], [1e9]]])
    obs = torch.tensor([[[True], [True], [False], [False]]])
    loc, scale = target_scale(v, obs)  # NaN where unobserved is ignored
    assert loc.dtype == scale.dtype == torch.float64
    assert loc.item() == 2.0 and scale.item() == 1.0
    for a in (1e-300, 1e300):  # no absolute floor, no overflow: any magnitude keeps its scale
        assert target_scale(a * v.double(), obs)[1].item() == pytest.approx(a, rel=1e-12)


def test_target_scale_commutes_with_affine_maps():
    """loc(a y + b) = a loc(y) + b and scale(a y + b) = a scale(y), a > 0, for a far beyond
    float32 and a shift of 1e6 standard deviations."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 50, 2, generator=g, dtype=torch.float64)
    obs = torch.rand(3, 50, 2, generator=g) > 0.2
    loc, scale = target_scale(y, obs)
    for a, b in [(1e-9, 0.0), (1e9, 0.0), (1.0, 1e6), (1e-9, -1e-3), (1e9, 1e15)]:
        la, sa = target_scale(a * y + b, obs)
        torch.testing.assert_close(sa, a * scale, rtol=1e-9, atol=0)
        torch.testing.assert_close((la - b) / (a * scale), loc / scale, rtol=0, atol=1e-8)
        z, za = standardize(y, loc, scale), standardize(a * y + b, la, sa)
        torch.testing.assert_close(za, z, rtol=0, atol=1e-8)


def test_target_scale_constant_single_point_and_empty_contexts():
    """Constant or single-point: degenerate (scale 0, z 0, decodes to loc); empty: loc 0, scale 1."""
    v = torch.full((2, 10, 3), 5.0, dtype=torch.float64)
    v[0, :, 1] = 0.1 + 0.2  # a constant with float rounding in it
    obs = torch.ones_like(v, dtype=torch.bool)
    obs[1] = False
    obs[0, :, 2] = False
    obs[0, 0, 2] = True  # a single observed point
    v[0, 1:, 2] = 99.0  # ... whose unobserved neighbours do not count
    loc, scale = target_scale(v, obs)
    assert loc[0].tolist() == [[5.0, 0.1 + 0.2, 5.0]] and (scale[0] == 0).all()
    assert (loc[1] == 0).all() and (scale[1] == 1).all()
    z = standardize(v, loc, scale)
    assert (z[0] == 0).all() and torch.isfinite(z).all()
    assert (z[0] * scale[0] + loc[0] == v[0, :1]).all()
    assert target_scale(torch.zeros(1, 4, 1), torch.ones(1, 4, 1, dtype=torch.bool))[1].item() == 0
    # a real but relatively tiny spread (1e-9 of the level) is kept, not taken for a constant
    w = 1e6 + 1e-3 * torch.arange(4, dtype=torch.float64).reshape(1, 4, 1)
    assert target_scale(w, torch.ones_like(w, dtype=torch.bool))[1].item() > 0
