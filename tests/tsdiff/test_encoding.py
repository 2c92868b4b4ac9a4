"""Value encoding: context scaling (safe for constant / empty contexts) and asinh bins."""

import numpy as np
import torch

from tsdiff.encoding import BinEncoder, context_scale


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
