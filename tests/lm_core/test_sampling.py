"""Commit policies and the canvas-generic loop: schedule, Gumbel draws, per-row randomness."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_core.sampling import LowConfidence, Threshold, denoise, make_policy, num_transfer_tokens
from lm_core.sampling.policies import gumbel_sample, top_k_mask, uniform_like


def llada_reference(mask_num: list[int], steps: int) -> list[list[int]]:
    """LLaDA's get_num_transfer_tokens, written as loops."""
    out = []
    for n in mask_num:
        row = [n // steps] * steps
        for i in range(n % steps):
            row[i] += 1
        out.append(row)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=5), st.integers(1, 64))
def test_schedule_matches_llada(ns, steps):
    got = num_transfer_tokens(torch.tensor(ns), steps)
    assert got.tolist() == llada_reference(ns, steps)
    assert got.sum(-1).tolist() == ns


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


def _counting_model(V=6):
    def fn(x):
        torch.manual_seed(int(x.sum()))
        return torch.randn(*x.shape, V)

    return fn


def test_denoise_fixed_count_uses_exact_steps_and_fills_all():
    x = torch.full((2, 12), 5)
    x[:, :4] = 1
    editable = torch.zeros(2, 12, dtype=torch.bool)
    editable[:, 4:] = True
    out, stats = denoise(
        _counting_model(), x, editable, mask_id=5, policy=make_policy("low_confidence"),
        steps=6, block_length=4,
    )  # fmt: skip
    assert stats.nfe == 6 and stats.per_block_nfe == [3, 3]
    assert not (out == 5).any() and stats.committed == 16
    assert math.isclose(stats.tpf, 8 / 6)


def test_on_block_end_can_fill_cells_in_place_and_stop():
    x = torch.full((1, 8), 5)
    editable = torch.ones(1, 8, dtype=torch.bool)

    def fill(x, editable, b):
        x[(x == 5) & editable] = 0
        return False

    out, stats = denoise(
        _counting_model(), x, editable, mask_id=5, policy=make_policy("threshold", tau=1.0),
        steps=2, block_length=4, on_block_end=fill,
    )  # fmt: skip
    assert stats.per_block_nfe == [4, 0] and (out[0, 4:] == 0).all()
