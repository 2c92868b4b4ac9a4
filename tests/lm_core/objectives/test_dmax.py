"""DMax objective (lm_core.objectives.dmax): self-correction loss, and a learning test with soft decoding."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn

from lm_core.config import ModelConfig
from lm_core.nn.transformer import Transformer
from lm_core.objectives.dmax import dmax_loss
from lm_core.objectives.masked import masked_diffusion_loss
from lm_core.text.generate import dmax_generate, generate

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
MASK = 11

EOS, PAD, SEP = 12, 13, 10


class Recorder(nn.Module):
    """logits[b, i] = W[x[b, i]] + Q[b, i]: each cell has its own parameters; records inputs."""

    def __init__(self, B, T, V=14) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = nn.Parameter(torch.randn(V, V, generator=g))
        self.Q = nn.Parameter(torch.randn(B, T, V, generator=g))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x, **_):
        self.inputs.append(x.clone())
        return self.W[x] + self.Q


def test_self_correction_inputs_are_the_models_predictions_and_all_response_cells_count():
    B, T, P = 8, 10, 3  # P prompt cells that are never masked nor scored
    ids = torch.randint(0, 10, (B, T), generator=torch.Generator().manual_seed(1))
    maskable = torch.arange(T)[None].expand(B, T) >= P
    m = Recorder(B, T)
    loss, stats = dmax_loss(m, ids, mask_id=MASK, share=0.5, maskable=maskable,
                            generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert len(m.inputs) == 2  # the no-grad proposal pass, then the trained pass
    x_t, x_in = m.inputs
    masked = x_t == MASK
    has = masked.any(-1)  # rows without a masked cell cannot be told apart: left out below
    sc = (x_in != MASK).all(-1) & has  # rows whose masks were all replaced
    plain = (x_in == x_t).all(-1) & has
    assert sc.any() and plain.any() and torch.equal(sc | plain, has)
    logits = (m.W[x_t] + m.Q).detach()
    logits[..., MASK] = float("-inf")
    pred = logits.argmax(-1)
    assert torch.equal(x_in[sc][masked[sc]], pred[sc][masked[sc]])  # the model's own argmax
    assert torch.equal(x_in[~masked], ids[~masked])  # unmasked cells stay clean
    assert 0.0 <= float(stats["sc_wrong_frac"]) <= 1.0
    loss.backward()
    scored = m.Q.grad.abs().sum(-1) > 0
    assert torch.equal(scored[sc], maskable[sc])  # every response cell, masked or not
    assert torch.equal(scored[plain], masked[plain])  # plain rows: masked cells only
    assert not scored[:, :P].any()


def test_share_zero_is_the_masked_diffusion_loss():
    ids = torch.randint(0, 10, (4, 9), generator=torch.Generator().manual_seed(0))
    m = Recorder(4, 9)
    a, _ = dmax_loss(m, ids, mask_id=MASK, share=0.0, generator=torch.Generator().manual_seed(5))
    b, _ = masked_diffusion_loss(m, ids, mask_id=MASK, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="share"):
        dmax_loss(m, ids, mask_id=MASK, share=1.5)


def test_a_fixed_mask_ratio_masks_that_share_of_every_sequence():
    """mask_ratio (the DMax reference's fixed 0.75): each maskable cell is masked with that
    probability in every row, instead of a per-row t; 1.0 masks every maskable cell."""
    B, T, P = 64, 40, 4
    ids = torch.randint(0, 10, (B, T), generator=torch.Generator().manual_seed(2))
    maskable = torch.arange(T)[None].expand(B, T) >= P
    m = Recorder(B, T)
    _, stats = dmax_loss(m, ids, mask_id=MASK, share=0.0, maskable=maskable, mask_ratio=0.75,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    per_row = (m.inputs[-1] == MASK).sum(-1).float() / (T - P)
    assert abs(float(stats["masked_frac"]) - 0.75) < 0.02
    assert per_row.min() > 0.4 and per_row.max() < 1.0  # no row near t = 0 or 1, unlike U(0, 1)
    _, stats = dmax_loss(m, ids, mask_id=MASK, share=0.5, maskable=maskable, mask_ratio=1.0)
    assert float(stats["masked_frac"]) == 1.0
    with pytest.raises(ValueError, match="mask_ratio"):
        dmax_loss(m, ids, mask_id=MASK, mask_ratio=0.0)


def _reverse_task(rng, n=5):
    d = [rng.randrange(10) for _ in range(n)]
    return d + [SEP], d[::-1]


@pytest.mark.learning
def test_dmax_learns_a_synthetic_task_and_soft_decoding_matches_one_token_per_step():
    """SYNTHETIC: reverse 5 digits. A tiny model trained with the DMax objective; soft parallel
    decoding reaches the answers of one-token-per-step decoding with fewer forward passes."""
    torch.manual_seed(0)
    rng = random.Random(0)
    model = Transformer(ModelConfig(vocab_size=14, d_model=32, n_layers=2, n_heads=4,
                                    max_seq_len=16))  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    # 800 steps decayed to 0: after 400 steps at a constant rate, 2 of 5 seeds had not yet learned
    # the reversal (accuracy 0.22, 0.78) and one decoded soft != one-token on 4 of 32, so the
    # CPU's summation order could decide the test; after 800 decayed steps, 3 seeds tried reach
    # accuracy 0.91-1.0 and agreement 0.94-1.0
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=800)
    g = torch.Generator().manual_seed(0)
    for _ in range(800):
        rows = [_reverse_task(rng) for _ in range(64)]
        ids = torch.tensor([p + a for p, a in rows])
        maskable = torch.arange(ids.shape[1])[None].expand_as(ids) >= 6
        loss, _ = dmax_loss(model, ids, mask_id=MASK, maskable=maskable, share=0.5,
                            normalise="answer", stratified=True, generator=g)  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    test = [_reverse_task(random.Random(1000 + i)) for i in range(32)]
    prompts = [p for p, _ in test]
    kw = dict(gen_length=5, block_length=5, mask_id=MASK, eos_id=EOS, pad_id=PAD)
    with torch.no_grad():
        one = generate(model, None, prompts, steps=5, sampler="low_confidence", **kw)
        soft = generate(model, None, prompts, sampler="dmax", tau=0.5, **kw)
        tpf = [dmax_generate(model, None, [p], tau=0.5, **kw).stats.tpf for p in prompts[:8]]
    answers = [a for _, a in test]
    acc_one = sum(s.tolist() == a for s, a in zip(one.sequences, answers, strict=True)) / len(test)
    agree = sum(
        a.tolist() == b.tolist() for a, b in zip(one.sequences, soft.sequences, strict=True)
    ) / len(test)
    # 0.8, not 0.9: one of the seeds tried reaches only 29/32 (0.906) after 800 steps; a model
    # that has not learned the reversal gets 0.1-0.2 (1e-5 by chance)
    assert acc_one >= 0.8, acc_one
    assert agree >= 0.8, agree
    assert sum(tpf) / len(tpf) > 1.5, tpf


# ----------------------------------------------------------------- fit and generate commands
