"""Masked-diffusion ELBO (lm_core.objectives.masked; time convention: t = 0 clean, t = 1 all
masked)."""

from __future__ import annotations

import math

import pytest
import torch

from lm_core.config import ModelConfig
from lm_core.corruption import mask_probability, sample_t
from lm_core.nn.transformer import Transformer
from lm_core.objectives.masked import block_causal_logits, masked_diffusion_loss
from lm_core.text.generate import generate

V, MASK = 7, 6


class Lookup(torch.nn.Module):
    """A 'model' whose logits at each position depend only on that position's input id."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.randn(V, V, generator=torch.Generator().manual_seed(3))

    def forward(self, x, **kw):
        return self.table[x]


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_mask_rate_matches_p(t):
    x0 = torch.randint(0, MASK, (4, 5000), generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    _, stats = masked_diffusion_loss(Lookup(), x0, mask_id=MASK, t=torch.tensor(t), generator=g)
    p = (1 - 1e-3) * t + 1e-3
    assert abs(float(stats["masked_frac"]) - p) < 4 * math.sqrt(p * (1 - p) / x0.numel())


def test_eps_floor():
    assert float(mask_probability(torch.tensor(0.0))) == pytest.approx(1e-3)
    assert float(mask_probability(torch.tensor(1.0))) == pytest.approx(1.0)
    x0 = torch.randint(0, MASK, (2, 20000), generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(2)
    loss, stats = masked_diffusion_loss(Lookup(), x0, mask_id=MASK, t=torch.zeros(()), generator=g)
    assert 0 < float(stats["masked_frac"]) < 5e-3 and math.isfinite(float(loss))


def test_stratified_t_has_one_draw_per_stratum():
    t = sample_t(16, stratified=True, generator=torch.Generator().manual_seed(0))
    assert sorted((t * 16).floor().long().tolist()) == list(range(16))
    assert float(t.min()) >= 0 and float(t.max()) < 1


def test_loss_equals_hand_computed_elbo():
    model = Lookup()
    x0 = torch.tensor([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]])
    t = torch.tensor([[0.3], [0.8]])
    maskable = torch.ones_like(x0, dtype=torch.bool)
    maskable[1, :2] = False  # e.g. a prompt: never masked, not counted
    loss, _ = masked_diffusion_loss(
        model, x0, mask_id=MASK, t=t, maskable=maskable, generator=torch.Generator().manual_seed(5)
    )
    # the same uniform draws the objective uses to pick masked tokens
    u = torch.rand(x0.shape, generator=torch.Generator().manual_seed(5))
    p = (1 - 1e-3) * t + 1e-3
    total = 0.0
    for b in range(2):
        for i in range(6):
            if maskable[b, i] and u[b, i] < p[b, 0]:
                logp = torch.log_softmax(model.table[MASK], -1)[x0[b, i]]
                total += float(-logp) / float(p[b, 0])
    assert total > 0
    assert float(loss) == pytest.approx(total / int(maskable.sum()), rel=1e-6)


def test_batch_with_nothing_masked_still_backpropagates():
    model = Transformer(ModelConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2))
    ids = torch.randint(0, MASK, (1, 3))
    loss, stats = masked_diffusion_loss(
        model, ids, mask_id=MASK, t=torch.zeros(()), generator=torch.Generator().manual_seed(0)
    )
    assert float(stats["masked_frac"]) == 0.0 and float(loss) == 0.0
    loss.backward()  # no "does not require grad" error
    assert model.tok_emb.weight.grad is not None


class Dense(torch.nn.Module):
    """A Transformer seen only as a callable: the loss takes logits at every position."""

    def __init__(self, net) -> None:
        super().__init__()
        self.net = net

    def forward(self, x, **kw):
        return self.net(x, **kw)


@pytest.mark.parametrize("ce_chunk", [0, 7])
def test_masked_only_loss_equals_the_full_logits_loss(ce_chunk):
    """The Transformer path projects only masked positions (in chunks when asked); the loss and
    every gradient equal those of full logits (a plain callable model) to float tolerance."""
    torch.manual_seed(0)
    net = Transformer(ModelConfig(vocab_size=V, d_model=16, n_layers=2, n_heads=2))
    x0 = torch.randint(0, MASK, (3, 24), generator=torch.Generator().manual_seed(1))

    def loss_and_grads(model, **kw):
        net.zero_grad()
        g = torch.Generator().manual_seed(4)
        loss, stats = masked_diffusion_loss(model, x0, mask_id=MASK, generator=g, **kw)
        loss.backward()
        return loss, stats, {n: p.grad.clone() for n, p in net.named_parameters()}

    want, want_stats, want_grads = loss_and_grads(Dense(net))
    got, got_stats, got_grads = loss_and_grads(net, ce_chunk=ce_chunk)
    assert 0 < float(got_stats["masked_frac"]) < 1
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_stats["ce_masked"], want_stats["ce_masked"])
    for name, g in want_grads.items():
        torch.testing.assert_close(got_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_block_causal_noisy_block_is_denoised_given_the_clean_blocks_before_it():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, d_model=32, n_layers=2, n_heads=4, max_seq_len=32,
                      init_std=0.3, block_causal=4)  # fmt: skip
    model = Transformer(cfg).eval()
    x0 = torch.randint(0, MASK, (1, 12))
    xt = x0.clone()
    xt[0, [1, 2, 5, 6, 7, 9]] = MASK
    with torch.no_grad():
        logits = block_causal_logits(model, xt, x0, None, None)
        for b in range(3):  # block b of x_t after the clean blocks before it, run alone
            seq = torch.cat([x0[:, : 4 * b], xt[:, 4 * b : 4 * b + 4]], dim=1)
            alone = model(seq)[:, 4 * b :]
            torch.testing.assert_close(logits[:, 4 * b : 4 * b + 4], alone, rtol=1e-5, atol=1e-5)


def test_block_causal_loss_ignores_later_blocks_and_bidirectional_does_not():
    torch.manual_seed(0)
    shape = dict(vocab_size=V, d_model=32, n_layers=2, n_heads=4, max_seq_len=32, init_std=0.3)
    maskable = torch.zeros(2, 12, dtype=torch.bool)
    maskable[:, :8] = True  # the last block is never masked and never scored
    x = torch.randint(0, MASK, (2, 12))
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % MASK
    for block_causal, same in ((4, True), (0, False)):
        model = Transformer(ModelConfig(**shape, block_causal=block_causal))
        losses = [
            masked_diffusion_loss(model, ids, mask_id=MASK, maskable=maskable, t=torch.tensor(0.5),
                                  generator=torch.Generator().manual_seed(1))[0]
            for ids in (x, y)
        ]  # fmt: skip
        assert torch.allclose(losses[0], losses[1]) == same


@pytest.mark.learning
def test_block_causal_training_learns_a_block_from_the_clean_block_before_it():
    """Block 1 = block 0 + 1 (mod 5): trained on [x_t, x_0], the model fills block 1 from a
    clean block 0 (the prompt), with the exact cache."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, d_model=64, n_layers=2, n_heads=4, max_seq_len=16,
                      block_causal=4)  # fmt: skip
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        a = torch.randint(0, 5, (32, 4), generator=g)
        loss, _ = masked_diffusion_loss(model, torch.cat([a, (a + 1) % 5], 1), mask_id=MASK,
                                        generator=g)  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    prompts = torch.randint(0, 5, (20, 4), generator=g)
    r = generate(model, None, prompts.tolist(), gen_length=4, block_length=4, steps=4,
                 cache="dual", mask_id=MASK, eos_id=5, pad_id=5)  # fmt: skip
    acc = (r.sequences == (prompts + 1) % 5).float().mean()
    assert acc > 0.9  # chance: 0.2
