"""tsdiff.model: the numeric denoiser and its horizon set-up."""

import pytest
import torch

from tests.tsdiff.tiny import sine_frame
from tsdiff.data.frames import Columns, frame_to_series
from tsdiff.data.windows import collate, make_window
from tsdiff.model import NumericDenoiser, TSModelConfig


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
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
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


def test_cached_context_gives_the_logits_of_one_uncached_forward():
    """The context is encoded once (its per-layer keys/values cached) and every sampler call on
    the horizon reuses them: the same logits as one forward pass over context + horizon tokens
    under the prefix-LM mask the model is trained with (context attends to context only, the
    horizon to everything)."""
    cfg = TSModelConfig(
        context_length=16, prediction_length=6, n_channels=2, patch_size=4, n_bins=32,
        d_model=32, n_layers=2, n_heads=2, n_time_features=4,
    )  # fmt: skip
    torch.manual_seed(0)
    m = NumericDenoiser(cfg).eval()
    torch.nn.init.normal_(m.head.weight, std=0.5)
    ser = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h")
    b = collate([make_window(ser[0], e, 16, 6, "h") for e in (100, 200)])
    s = m.scale_batch(b)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 33, (2, 12), generator=g)  # bin ids and MASK (32) mixed
    static, pos_h = m.horizon_static(s), m.horizon_positions(2, "cpu")
    cached = m.horizon_logits(tokens, static, m.encode_context(s), pos_h)
    ctx, pos_c = m.context_tokens(s)  # [2, C * N, d]
    P = ctx.shape[1]
    x = torch.cat([ctx, m.backbone.tok_emb(tokens) + static], 1)
    allowed = torch.ones(2, P + 12, P + 12, dtype=torch.bool)
    allowed[:, :P, P:] = False  # context rows never see the horizon
    h = m.backbone(
        inputs_embeds=x, positions=torch.cat([pos_c, pos_h], 1), attn_mask=allowed,
        return_hidden=True,
    )  # fmt: skip
    torch.testing.assert_close(cached, m.head(h[:, P:]).float(), atol=1e-5, rtol=1e-5)
