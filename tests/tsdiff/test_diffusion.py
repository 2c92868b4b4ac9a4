"""The numeric masked-diffusion path: lm_core's objective and sampler on horizon cells."""

import numpy as np
import pandas as pd
import pytest
import torch

from lm_core.sampling import DistributionOrder, LowConfidence
from tsdiff import Forecaster
from tsdiff.data.frames import Columns, frame_to_series
from tsdiff.data.windows import TrainWindows, collate, make_window
from tsdiff.diffusion import horizon_loss, resolve_schedule, sample_paths, shared_first_step
from tsdiff.metrics import coverage, crps_from_samples
from tsdiff.model import NumericDenoiser, TSModelConfig


def _tiny_model(C=2, H=6, L=16):
    cfg = TSModelConfig(
        context_length=L, prediction_length=H, n_channels=C, patch_size=4, n_bins=32,
        d_model=32, n_layers=1, n_heads=2, n_time_features=4,
    )  # fmt: skip
    torch.manual_seed(0)
    return NumericDenoiser(cfg)


def _frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2021-01-01", periods=n, freq="h")
    base = np.sin(np.arange(n) * 2 * np.pi / 24)
    return pd.DataFrame(
        {"item_id": "a", "timestamp": t, "y": base + 0.3 * rng.standard_normal(n), "x": 2 * base}
    )


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
    m = _tiny_model()
    ser = frame_to_series(_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], 200, 16, 6, "h")])
    b["fut_obs"][:] = False
    b["fut_obs"][0, 0, 0] = True
    loss, stats = horizon_loss(m, b, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    assert stats["masked_frac"] <= 1.0


def test_sample_paths_shape_nfe_and_finiteness():
    m = _tiny_model()
    ser = frame_to_series(_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], e, 16, 6, "h") for e in (100, 200, 300)])
    s, stats = sample_paths(m, b, 7, steps=3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 7, 6, 2)
    assert torch.isfinite(s).all()
    assert stats.nfe == 3
    # same seed -> same paths
    s2, _ = sample_paths(m, b, 7, steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, s2)


def test_first_step_is_evaluated_once_per_window_not_once_per_path():
    """Before anything is drawn the S paths of a window share one canvas, so the first network
    call runs on one row per window and its logits are repeated; later calls see every path."""
    m = _tiny_model()
    torch.nn.init.normal_(m.head.weight, std=0.5)
    ser = frame_to_series(_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], e, 16, 6, "h") for e in (100, 200)])
    rows, logits = [], []

    def record(module, inputs, out):
        rows.append(out.shape[0])
        logits.append(out)

    hook = m.head.register_forward_hook(record)
    try:
        sample_paths(m, b, 5, steps=3, generator=torch.Generator().manual_seed(0))
    finally:
        hook.remove()
    assert rows == [2, 10, 10]
    # the shared first-step logits equal what each path would have got on its own
    s = m.scale_batch(b)
    kvs = m.repeat_kv(m.encode_context(s), 5)
    st = m.horizon_static(s).repeat_interleave(5, 0)
    canvas = torch.full((10, 12), m.encoder.mask_id)
    full = m.horizon_logits(canvas, st, kvs, m.horizon_positions(10, st.device))
    torch.testing.assert_close(
        full, logits[0].float().repeat_interleave(5, 0), atol=1e-5, rtol=1e-5
    )


def test_shared_first_step_commits_the_policys_cells_with_its_value_distribution():
    """The first step, done once per window, commits the cells DistributionOrder would commit on
    every path (same order rule on the same logits) and draws their values from the same
    softmax: S draws of one window's cell match the policy's draws on S repeated rows."""
    m = _tiny_model()
    torch.nn.init.normal_(m.head.weight, std=0.5)
    ser = frame_to_series(_frame(), Columns(targets=["y", "x"]), "h")
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


def test_bf16_sampling_matches_float32_in_distribution():
    """precision='bf16' runs the network under bfloat16 autocast; the paths it draws have the
    same distribution as float32's (here: the same per-cell means and spreads within noise)."""
    m = _tiny_model()
    torch.nn.init.normal_(m.head.weight, std=0.5)  # a non-uniform predictive distribution
    ser = frame_to_series(_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], 200, 16, 6, "h")])
    out = {}
    for prec in ("32", "bf16"):
        g = torch.Generator().manual_seed(0)
        out[prec], _ = sample_paths(m, b, 2000, steps=3, generator=g, precision=prec)
        # no bf16 leaks out: paths are decoded in float64 (z * scale + loc, see encoding.py)
        assert out[prec].dtype == torch.float64 and torch.isfinite(out[prec]).all()
    sd = out["32"].std(1)
    assert ((out["32"].mean(1) - out["bf16"].mean(1)).abs() < 0.15 * sd).all()
    assert ((out["32"].std(1) / out["bf16"].std(1) - 1).abs() < 0.1).all()
    with pytest.raises(ValueError, match="precision"):
        sample_paths(m, b, 5, precision="fp16")


def test_resolve_schedule_defaults_and_blocks():
    assert resolve_schedule(24, 2, None, None) == (6, 48)
    steps, bl = resolve_schedule(24, 2, 8, 6)
    assert bl == 12 and steps % 4 == 0


def test_value_dependent_order_is_available_for_comparison():
    m = _tiny_model()
    ser = frame_to_series(_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], 200, 16, 6, "h")])
    s, _ = sample_paths(m, b, 5, order="prob", generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(s).all()
    assert isinstance(LowConfidence(temperature=1.0, confidence="prob"), LowConfidence)
    with pytest.raises(ValueError, match="order"):
        sample_paths(m, b, 5, order="sorted")


@pytest.mark.slow
def test_learns_a_known_noise_level_and_covers_it():
    """Learning test on a SYNTHETIC series whose predictive distribution is known.

    y_t = sin(2 pi t / 24) + N(0, 0.3^2) i.i.d. The ideal 90 % interval covers 90 %; after a short
    training, tsdiff's 90 % intervals must cover between 75 % and 98 % and its mean CRPS must be
    within 25 % of the oracle's (the true Gaussian predictive: expected CRPS = sigma / sqrt(pi)).
    """
    df = _frame(n=1500, seed=1)
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
    ser = frame_to_series(_frame(n=50), Columns(targets=["y"]), "h")
    ds = TrainWindows(ser, 48, 6, "h", n_windows=10, seed=0)
    w = ds[0]
    assert w["ctx"].shape == (48, 1)
    pad = ~w["ctx_obs"][:, 0]
    assert (w["ctx"][pad] == 0).all()  # unobserved cells carry no value, and are flagged


def test_flow_mode_trains_and_samples_continuous_paths():
    """Flow mode: same Transformer, continuous values; Euler steps set the NFE."""
    from tsdiff.flow import flow_loss

    cfg = TSModelConfig(
        context_length=16, prediction_length=6, n_channels=2, patch_size=4, d_model=32,
        n_layers=1, n_heads=2, n_time_features=4, mode="flow",
    )  # fmt: skip
    torch.manual_seed(0)
    m = NumericDenoiser(cfg)
    ser = frame_to_series(_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], e, 16, 6, "h") for e in (100, 200)])
    loss, _ = flow_loss(m, b, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and m.value_in.weight.grad is not None
    torch.nn.init.normal_(m.head.weight, std=0.02)  # the head starts at zero; give it a slope
    s, stats = sample_paths(m, b, 9, steps=4, generator=torch.Generator().manual_seed(1))
    assert s.shape == (2, 9, 6, 2) and torch.isfinite(s).all()
    assert stats.nfe == 4
    assert len(torch.unique(s)) > 50  # continuous, not lattice-valued


@pytest.mark.parametrize("scale_features", [False, True])
def test_scale_features_break_scale_invariance_only_when_asked(scale_features):
    """Without scale features the denoiser sees scale-free inputs: a window and its affine copy
    (x -> 10 x + 3) give the same logits. With them it also sees each channel's level and scale,
    so the two differ (what an effect in absolute units needs)."""
    cfg = TSModelConfig(
        context_length=16, prediction_length=6, n_channels=2, patch_size=4, n_bins=32,
        d_model=32, n_layers=1, n_heads=2, n_time_features=4, scale_features=scale_features,
    )  # fmt: skip
    torch.manual_seed(0)
    m = NumericDenoiser(cfg).eval()
    torch.nn.init.normal_(m.head.weight, std=0.5)
    ser = frame_to_series(_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], 200, 16, 6, "h")])
    b2 = dict(b, ctx=10 * b["ctx"] + 3)
    logits = []
    for batch in (b, b2):
        s = m.scale_batch(batch)
        kv = m.encode_context(s)
        tokens = torch.full((1, 12), m.encoder.mask_id)
        logits.append(
            m.horizon_logits(tokens, m.horizon_static(s), kv, m.horizon_positions(1, "cpu"))
        )
    same = torch.allclose(logits[0], logits[1], atol=1e-4)
    assert same != scale_features
