"""tsdiff.sampling: the (mode, commit) -> sampler table and its driver, sample_paths."""

import pytest
import torch

from lm_core.solvers import LowConfidence
from tests.tsdiff.tiny import sine_frame, tiny_model
from tsdiff.config import MODES
from tsdiff.data.frames import Columns, frame_to_series
from tsdiff.data.windows import collate, make_window
from tsdiff.model import NumericDenoiser, TSModelConfig
from tsdiff.sampling import COMMITS, SAMPLERS, sample_paths


def test_sample_paths_shape_nfe_and_finiteness():
    m = tiny_model()
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], e, 16, 6, "h") for e in (100, 200, 300)])
    s, stats = sample_paths(m, b, 7, steps=3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 7, 6, 2)
    assert torch.isfinite(s).all()
    assert stats.nfe == 3
    # same seed -> same paths
    s2, _ = sample_paths(m, b, 7, steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, s2)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize(
    "steps,block_length", [(12, None), (5, None), (2, None), (1, None), (4, 3)]
)
@pytest.mark.parametrize("commit", ["hard", "soft"])
def test_a_sampler_setting_costs_the_network_calls_it_says(schedule, steps, block_length, commit):
    """NFE is what the setting says: ``steps`` network calls per path (the first one per window),
    and every horizon cell is drawn."""
    m = tiny_model()
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], e, 16, 6, "h") for e in (100, 200)])
    rows = []
    hook = m.head.register_forward_hook(lambda mod, i, out: rows.append(out.shape[0]))
    try:
        s, stats = sample_paths(
            m, b, 3, steps=steps, block_length=block_length, schedule=schedule, commit=commit,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
    finally:
        hook.remove()
    assert stats.nfe == len(rows) == steps
    assert rows[0] == 2 and all(r == 6 for r in rows[1:])  # one row per window, then per path
    assert stats.committed == 2 * 3 * 12 and torch.isfinite(s).all()


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_branching_runs_the_network_on_fewer_rows_at_the_same_nfe(steps):
    """branch=b: ceil(S / b) rows per window run the sampler, each branching into b paths at
    the last step (:func:`tsdiff.diffusion.branch_last_step`)."""
    m = tiny_model()
    torch.nn.init.normal_(m.head.weight, std=0.5)
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], e, 16, 6, "h") for e in (100, 200)])
    rows = []
    hook = m.head.register_forward_hook(lambda mod, i, out: rows.append(out.shape[0]))
    try:
        s, stats = sample_paths(m, b, 10, steps=steps, branch=4, schedule="cosine",
                                generator=torch.Generator().manual_seed(0))  # fmt: skip
    finally:
        hook.remove()
    assert s.shape == (2, 10, 6, 2) and stats.nfe == steps
    assert rows == [2] + [2 * 3] * (steps - 1)  # 3 = ceil(10 / 4) rows per window
    with pytest.raises(ValueError, match="branch"):
        sample_paths(m, b, 5, branch=0)


def test_first_step_is_evaluated_once_per_window_not_once_per_path():
    """Before anything is drawn the S paths of a window share one canvas, so the first network
    call runs on one row per window and its logits are repeated; later calls see every path."""
    m = tiny_model()
    torch.nn.init.normal_(m.head.weight, std=0.5)
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
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


def test_bf16_sampling_matches_float32_in_distribution():
    """precision='bf16' runs the network under bfloat16 autocast; the paths it draws have the
    same distribution as float32's (here: the same per-cell means and spreads within noise)."""
    m = tiny_model()
    torch.nn.init.normal_(m.head.weight, std=0.5)  # a non-uniform predictive distribution
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
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


def test_value_dependent_order_is_available_for_comparison():
    m = tiny_model()
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], 200, 16, 6, "h")])
    s, _ = sample_paths(m, b, 5, order="prob", generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(s).all()
    assert isinstance(LowConfidence(temperature=1.0, confidence="prob"), LowConfidence)
    with pytest.raises(ValueError, match="order"):
        sample_paths(m, b, 5, order="sorted")
    with pytest.raises(ValueError, match="schedule"):
        sample_paths(m, b, 5, schedule="sorted")


def test_the_table_has_a_sampler_for_every_mode_and_commit():
    """Every (mode, commit) pair picks a sampler; the flow commits nothing, so commit='soft'
    draws exactly the flow's paths (the same random numbers, the same values)."""
    assert set(SAMPLERS) == {(m, c) for m in MODES for c in COMMITS}
    assert SAMPLERS[("masked", "soft")] is not SAMPLERS[("masked", "hard")]
    torch.manual_seed(0)
    cfg = TSModelConfig(
        context_length=16, prediction_length=6, n_channels=2, patch_size=4, d_model=32,
        n_layers=1, n_heads=2, n_time_features=4, mode="flow",
    )  # fmt: skip
    m = NumericDenoiser(cfg)
    torch.nn.init.normal_(m.head.weight, std=0.02)
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], 200, 16, 6, "h")])
    g = torch.Generator
    hard, _ = sample_paths(m, b, 4, steps=2, generator=g().manual_seed(3))
    soft, _ = sample_paths(m, b, 4, steps=2, commit="soft", generator=g().manual_seed(3))
    assert torch.equal(hard, soft)
