"""The canvas-generic sampler loop (lm_core.solvers.loop): LLaDA's schedule, a counting model."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_core.solvers import denoise, make_policy, num_transfer_tokens


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
