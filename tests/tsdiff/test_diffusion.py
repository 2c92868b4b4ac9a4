"""The numeric masked-diffusion path: lm_core's objective and sampler on horizon cells."""

import numpy as np
import pytest
import torch

from lm_core.solvers import DistributionOrder
from lm_core.solvers.loop import num_transfer_tokens
from tests.tsdiff.tiny import sine_frame, tiny_model
from tsdiff import Forecaster
from tsdiff.data.frames import Columns, frame_to_series
from tsdiff.data.windows import TrainWindows, collate, make_window
from tsdiff.diffusion import (
    branch_last_step,
    commit_counts,
    default_steps,
    horizon_loss,
    resolve_schedule,
    shared_first_step,
)
from tsdiff.metrics import coverage, crps_from_samples


def test_distribution_order_ranks_before_drawing():
    """The committed cells are the lowest-entropy ones whatever values are then drawn."""
    logits = torch.zeros(1, 4, 8)
    logits[0, 2, 3] = 9.0  # cell 2 is near-certain, lowest entropy
    active = torch.ones(1, 4, dtype=torch.bool)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        x0, commit = DistributionOrder("entropy").step(logits, active, torch.tensor([1]), g)
        assert commit.tolist() == [[False, False, True, False]]
        assert x0[0, 2] == 3


def test_distribution_order_draws_follow_the_softmax():
    logits = torch.log(torch.tensor([[[0.2, 0.8]]])).expand(1, 4000, 2).contiguous()
    active = torch.ones(1, 4000, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    x0, commit = DistributionOrder("random").step(logits, active, torch.tensor([4000]), g)
    assert commit.all()
    assert abs(x0.float().mean().item() - 0.8) < 0.03


def test_horizon_loss_ignores_unobserved_targets():
    m = tiny_model()
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], 200, 16, 6, "h")])
    b["fut_obs"][:] = False
    b["fut_obs"][0, 0, 0] = True
    loss, stats = horizon_loss(m, b, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    assert stats["masked_frac"] <= 1.0


def test_shared_first_step_commits_the_policys_cells_with_its_value_distribution():
    """The first step, done once per window, commits the cells DistributionOrder would commit on
    every path (same order rule on the same logits) and draws their values from the same
    softmax: S draws of one window's cell match the policy's draws on S repeated rows."""
    m = tiny_model()
    torch.nn.init.normal_(m.head.weight, std=0.5)
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], e, 16, 6, "h") for e in (100, 200)])
    s = m.scale_batch(b)
    kvs, st = m.encode_context(s), m.horizon_static(s)
    pos = m.horizon_positions(2, st.device)
    S, k, T = 4000, 5, 1.3
    g = torch.Generator().manual_seed(0)
    fast = shared_first_step(m, st, kvs, pos, S, n_commit=k, order="entropy", temperature=T,
                             generator=g).view(2, S, 12)  # fmt: skip
    logits = m.horizon_logits(torch.full((2, 12), m.encoder.mask_id), st, kvs, pos) / T
    rows = logits.repeat_interleave(S, 0)
    x0, commit = DistributionOrder("entropy").step(
        rows, torch.ones(2 * S, 12, dtype=torch.bool), torch.full((2 * S,), k), g
    )
    commit, x0 = commit.view(2, S, 12), x0.view(2, S, 12)
    assert torch.equal(fast != m.encoder.mask_id, commit)  # the same cells, on every path
    for w in range(2):
        for c in commit[w, 0].nonzero().squeeze(-1).tolist():
            a = torch.bincount(fast[w, :, c], minlength=32).float() / S
            p = torch.bincount(x0[w, :, c], minlength=32).float() / S
            assert (a - p).abs().max() < 0.04  # two samples of 4000 from one softmax


def test_resolve_schedule_defaults_and_blocks():
    assert resolve_schedule(24, 2, None, None) == (default_steps(24), 48)
    steps, bl = resolve_schedule(24, 2, 8, 6)
    assert bl == 12 and steps % 4 == 0


@pytest.mark.parametrize("n,steps", [(48, 48), (48, 12), (48, 5), (48, 2), (240, 7), (6, 9)])
def test_commit_counts_fill_the_block_one_call_per_step(n, steps):
    """Every schedule commits every cell, at least one per step, in min(steps, n) steps; linear
    is LLaDA's (lm_core's); cosine commits few cells first and the most at the end."""
    lin, cos = commit_counts(n, steps, "linear"), commit_counts(n, steps, "cosine")
    assert lin == num_transfer_tokens(torch.tensor([n]), min(steps, n))[0].tolist()
    for c in (lin, cos):
        assert sum(c) == n and len(c) == min(steps, n) and min(c) >= 1
    assert cos == sorted(cos)
    if 2 < steps < n:
        assert cos[0] < lin[0] and cos[-1] > lin[-1]
    assert commit_counts(48, 4, "cosine") == [4, 10, 16, 18]  # MaskGIT: 48 cos(pi/2 s/4) hidden
    with pytest.raises(ValueError, match="schedule"):
        commit_counts(48, 4, "exp")


def test_branched_last_step_keeps_the_row_and_draws_the_rest_from_its_softmax():
    """Each row becomes b paths: its committed cells are shared, every hidden cell is drawn b
    times from the row's distribution."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 8, generator=g)
    canvas = torch.tensor([[3, 8, 1, 8, 8], [8, 0, 8, 8, 7]])  # 8 = MASK
    hidden = canvas == 8
    out = branch_last_step(logits, canvas, hidden, 4000, g).view(2, 4000, 5)
    assert (out != 8).all()
    for r in range(2):
        assert (out[r][:, ~hidden[r]] == canvas[r, ~hidden[r]]).all()
        for c in hidden[r].nonzero().squeeze(-1).tolist():
            freq = torch.bincount(out[r, :, c], minlength=8).float() / 4000
            assert (freq - torch.softmax(logits[r, c], -1)).abs().max() < 0.04


@pytest.mark.learning
@pytest.mark.slow
def test_learns_a_known_noise_level_and_covers_it():
    """Learning test on a SYNTHETIC series whose predictive distribution is known.

    y_t = sin(2 pi t / 24) + N(0, 0.3^2) i.i.d. The ideal 90 % interval covers 90 %; after a short
    training, tsdiff's 90 % intervals must cover between 75 % and 98 % and its mean CRPS must be
    within 25 % of the oracle's (the true Gaussian predictive: expected CRPS = sigma / sqrt(pi)).
    """
    df = sine_frame(n=1500, seed=1)
    f = Forecaster(
        prediction_length=12, context_length=48, freq="h", patch_size=8, n_bins=64, d_model=48,
        n_layers=2, n_heads=2, batch_size=32, max_steps=250, lr=3e-3, progress=False,
        calibrate=False, seed=0,
    )  # fmt: skip
    f.fit(df, target="y")
    bt = f.backtest(df, windows=20, num_samples=100)
    y, s = bt["y"][..., 0], bt["samples"][..., 0]  # [N, H], [N, S, H]
    cov = coverage(s, y, 0.9)
    crps = crps_from_samples(s, y).mean()
    oracle = 0.3 / np.sqrt(np.pi)
    assert 0.75 <= cov <= 0.98, cov
    assert crps <= 1.25 * oracle, (crps, oracle)


def test_train_windows_left_pad_short_context_as_unobserved():
    ser = frame_to_series(sine_frame(n=50), Columns(targets=["y"]), "h")
    ds = TrainWindows(ser, 48, 6, "h", n_windows=10, seed=0)
    w = ds[0]
    assert w["ctx"].shape == (48, 1)
    pad = ~w["ctx_obs"][:, 0]
    assert (w["ctx"][pad] == 0).all()  # unobserved cells carry no value, and are flagged
