"""Commit policies (lm_core.solvers.policies): Gumbel draws, per-row randomness, commit rules."""

import torch

from lm_core.solvers import LowConfidence, Threshold
from lm_core.solvers.policies import gumbel_sample, top_k_mask, uniform_like


def test_gumbel_draws_follow_softmax_at_temperature():
    logits = torch.tensor([[[2.0, 1.0, 0.0, -1.0]]]).expand(1, 20000, 4)
    g = torch.Generator().manual_seed(0)
    for T in (0.5, 1.0, 2.0):
        ids = gumbel_sample(logits, T, g)
        freq = torch.bincount(ids.flatten(), minlength=4).double() / ids.numel()
        p = torch.softmax(logits[0, 0].double() / T, -1)
        se = (p * (1 - p) / ids.numel()).sqrt()
        assert ((freq - p).abs() < 5 * se + 1e-9).all(), (T, freq, p)
    assert (gumbel_sample(logits, 0.0) == 0).all()


def test_per_row_draws_do_not_depend_on_the_batch():
    active_a = torch.tensor([[False, True, True, False]])
    big = torch.zeros(2, 6, dtype=torch.bool)
    big[0] = True
    big[1, 3:5] = True  # the same two active cells as row a, shifted by padding
    ua = uniform_like((1, 4, 3), [torch.Generator().manual_seed(7)], active=active_a)
    ub = uniform_like(
        (2, 6, 3), [torch.Generator().manual_seed(1), torch.Generator().manual_seed(7)], active=big
    )
    assert torch.equal(ua[0, 1:3], ub[1, 3:5])
    assert not torch.equal(ub[0, 0:2], ub[1, 3:5])


def test_top_k_ties_break_leftmost():
    score = torch.zeros(1, 5)
    active = torch.tensor([[False, True, True, True, True]])
    assert top_k_mask(score, active, torch.tensor([2])).tolist() == [
        [False, True, True, False, False]
    ]


def test_threshold_commits_confident_cells_and_at_least_one():
    logits = torch.full((2, 4, 3), -10.0)
    logits[0, 0, 1] = logits[0, 2, 2] = 10.0  # two confident cells in row 0
    active = torch.ones(2, 4, dtype=torch.bool)
    x0, commit = Threshold(tau=0.9).step(logits, active, torch.ones(2, dtype=torch.long))
    assert commit[0].tolist() == [True, False, True, False]
    assert int(commit[1].sum()) == 1  # nothing confident: still one commit
    assert x0[0, 0] == 1 and x0[0, 2] == 2


def test_low_confidence_commits_most_probable_first():
    logits = torch.zeros(1, 4, 3)
    logits[0, 3, 0] = 5.0
    logits[0, 1, 2] = 3.0
    _, commit = LowConfidence().step(logits, torch.ones(1, 4, dtype=torch.bool), torch.tensor([2]))
    assert commit.tolist() == [[False, True, False, True]]
