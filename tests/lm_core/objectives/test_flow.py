"""Flow-matching objective (lm_core.objectives.flow): the time convention, the velocity-loss
identity, prompt draws, and a synthetic learning test."""

from __future__ import annotations

import pytest
import torch

from lm_core.config import FlowConfig
from lm_core.corruption import flow_interpolate
from lm_core.flow import LatentCodec
from lm_core.objectives.flow import draw_prompts, flow_matching_loss, velocity_weight
from lm_core.solvers.flow import flow_sample
from lm_core.train.codec import train_codec
from tests.lm_core.tiny import tiny_denoiser


def test_time_convention():
    x, eps = torch.randn(4, 5, 3), torch.randn(4, 5, 3)
    torch.testing.assert_close(flow_interpolate(x, eps, torch.zeros(4)), x)
    torch.testing.assert_close(flow_interpolate(x, eps, torch.ones(4)), eps)
    half = flow_interpolate(x, eps, torch.full((4,), 0.5))
    torch.testing.assert_close(half, 0.5 * (x + eps))


def test_velocity_loss_identity():
    """|v_hat - v|^2 with v = eps - x, v_hat = (z_t - x_hat) / t equals |x_hat - x|^2 / t^2."""
    g = torch.Generator().manual_seed(0)
    x, eps, x_hat = (torch.randn(6, 4, 5, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.rand(6, generator=g, dtype=torch.float64) * 0.9 + 0.1
    z = flow_interpolate(x, eps, t)
    v, v_hat = eps - x, (z - x_hat) / t[:, None, None]
    lhs = (v_hat - v).pow(2).mean(-1)
    rhs = (x_hat - x).pow(2).mean(-1) * velocity_weight(t, 0.05)[:, None]
    torch.testing.assert_close(lhs, rhs)

    class Fixed(torch.nn.Module):  # a "denoiser" returning fixed predictions
        self_condition = False

        def forward(self, z, t, **kw):
            return x_hat.float()

    cfg = FlowConfig(t_min=0.05)
    mask = torch.ones(6, 4, dtype=torch.bool)
    loss, _ = flow_matching_loss(
        Fixed(), x.float(), cfg=cfg, loss_mask=mask, t=t.float(), generator=torch.Generator()
    )
    torch.testing.assert_close(loss, lhs.mean().float(), rtol=1e-5, atol=1e-5)


def test_prompt_draws_respect_validity():
    valid = torch.ones(64, 10, dtype=torch.bool)
    valid[:, 8:] = False
    given, dropped = draw_prompts(
        valid, FlowConfig(prompt_prob=0.5, cond_drop=0.5), torch.Generator()
    )
    k = given.sum(-1)
    assert (k <= 4).all() and 0 < (k > 0).float().mean() < 1
    assert (given[:, 0] | (k == 0)).all() and not (dropped & (k == 0)).any()


@pytest.mark.learning
def test_flow_learns_a_synthetic_pattern():
    """Synthetic data: every row is the same 8-token pattern; after 400 steps, unconditional
    Euler samples (8 NFE) decode to the pattern. (Absolute position comes only from attention
    patterns under RoPE, hence a few hundred steps.)"""
    torch.manual_seed(0)
    pattern = torch.tensor([1, 5, 2, 7, 3, 3, 6, 4])
    batch = {"input_ids": pattern.repeat(16, 1)}
    codec = LatentCodec(8, 4, d_encoder=8)
    train_codec(codec, [batch], steps=60, lr=0.03, stat_batches=1)
    assert (codec.decode(codec.encode(pattern[None])) == pattern).all()
    den = tiny_denoiser(d_latent=4, d_model=32, n_layers=2)
    opt = torch.optim.AdamW(den.parameters(), lr=1e-2)
    # decay to 0: at a constant 1e-2 the loss spikes now and then (seed-dependent, so the CPU's
    # summation order decided whether step 400 landed on a spike: accuracy 0.36-0.59 on 2 of 7
    # seeds); with the decay, 7 of 7 seeds tried end at accuracy 0.97-1.0
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=400)
    cfg, g = FlowConfig(), torch.Generator().manual_seed(1)
    with torch.no_grad():
        x = codec.encode(batch["input_ids"])
    for _ in range(400):
        loss, _ = flow_matching_loss(
            den, x, cfg=cfg, loss_mask=torch.ones(16, 8, dtype=torch.bool), generator=g
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    den.eval()
    with torch.no_grad():
        z0, nfe = flow_sample(lambda z, t, s: den(z, t, x_sc=s), (8, 8, 4), steps=8, generator=g)
    acc = (codec.decode(z0) == pattern).float().mean()
    assert nfe == 8 and acc >= 0.9, acc
