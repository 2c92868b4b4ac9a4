"""DMax (lm_core.dmax): self-correction objective, soft embeddings, soft parallel decoding, fit."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lm_core.config import ModelConfig
from lm_core.dmax import advance_frontier, dmax_generate, dmax_loss, soft_embedding
from lm_core.nn.transformer import Transformer
from lm_core.objectives import masked_diffusion_loss
from lm_core.sampling.generate import generate

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
MASK = 11


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


def test_soft_embedding_mixes_by_confidence_and_rescales_the_norm():
    w = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    top1 = torch.tensor([2, 3, 4])
    conf = torch.tensor([1.0, 0.0, 0.3])
    e = soft_embedding(w, top1, conf, mask_id=5)
    torch.testing.assert_close(e[0], w[2])
    torch.testing.assert_close(e[1], w[5])
    mix = 0.3 * w[4] + 0.7 * w[5]
    torch.testing.assert_close(e[2] / e[2].norm(), mix / mix.norm())
    torch.testing.assert_close(e[2].norm(), 0.3 * w[4].norm() + 0.7 * w[5].norm())


def test_frontier_moves_left_to_right_up_to_the_first_cell_below_tau():
    conf = torch.tensor([[0.95, 0.97, 0.2, 0.99], [0.95, 0.97, 0.2, 0.99], [0.1] * 4, [0.95] * 4])
    f = advance_frontier(conf, torch.tensor([0, 2, 0, 1]), tau=0.9)
    assert f.tolist() == [2, 3, 1, 4]  # rows 1, 2: cell below tau first -> just that one cell
    assert advance_frontier(conf[:1], torch.tensor([4]), 0.9).tolist() == [4]


class Scripted(nn.Module):
    """Logits from a script of per-position top-1 probabilities; records the block's inputs."""

    def __init__(self, script, V=8, d=8, mask_id=7, n_blocks=1) -> None:
        super().__init__()
        self.n_blocks = n_blocks
        self.tok_emb = nn.Embedding(V, d)
        self.cfg = SimpleNamespace(max_seq_len=64)
        self.script, self.V, self.mask_id, self.calls = script, V, mask_id, []

    def forward(self, input_ids=None, *, inputs_embeds=None, attn_mask=None, positions=None):
        self.calls.append(inputs_embeds.clone())
        top1, conf = self.script(len(self.calls) - 1)
        B, T, _ = inputs_embeds.shape
        top1, conf = top1 * self.n_blocks, conf * self.n_blocks  # the same in every block
        N = len(conf)
        probs = torch.full((B, T, self.V), 1e-9)
        tail = torch.tensor(conf)
        rest = (1 - tail) / (self.V - 2)
        probs[:, T - N :, :] = rest[None, :, None].expand(B, N, self.V).clone()
        probs[:, T - N :, self.mask_id] = 1e-9
        idx = torch.tensor(top1)[None, :, None].expand(B, N, 1)
        probs[:, T - N :].scatter_(-1, idx, tail[None, :, None].expand(B, N, 1).clone())
        return probs.log()


def _decoded_cells(model, call, n):
    """Which of the last n cells of a recorded input are not the MASK embedding."""
    e = model.calls[call][0, -n:]
    return (~torch.isclose(e, model.tok_emb.weight[model.mask_id].expand_as(e)).all(-1)).tolist()


def test_soft_decoding_commits_left_to_right_and_stops_when_nothing_changes():
    m = Scripted(lambda k: ([1, 2, 3, 4], [0.95, 0.5, 0.95, 0.95]))
    with torch.no_grad():
        r = dmax_generate(m, None, [[0, 1]], gen_length=4, block_length=4, tau=0.9,
                          mask_id=7, eos_id=6, pad_id=5)  # fmt: skip
    assert r.sequences.tolist() == [[1, 2, 3, 4]]
    assert r.stats.nfe == 3  # frontier 0 -> 1 -> 2 (forced) -> 4, then nothing changed
    assert _decoded_cells(m, 0, 4) == [False] * 4
    assert _decoded_cells(m, 1, 4) == [True, False, False, False]
    assert _decoded_cells(m, 2, 4) == [True, True, False, False]
    soft = m.calls[1][0, -4]  # cell 0 fed as p E[top1] + (1 - p) E[MASK], norm rescaled
    torch.testing.assert_close(
        soft, soft_embedding(m.tok_emb.weight, torch.tensor(1), torch.tensor(0.95), 7)
    )


def test_hard_ablation_feeds_decoded_cells_back_as_their_top1_token():
    m = Scripted(lambda k: ([1, 2, 3, 4], [0.95, 0.5, 0.95, 0.95]))
    with torch.no_grad():
        r = dmax_generate(m, None, [[0, 1]], gen_length=4, block_length=4, tau=0.9, soft=False,
                          mask_id=7, eos_id=6, pad_id=5)  # fmt: skip
    assert r.sequences.tolist() == [[1, 2, 3, 4]] and r.stats.nfe == 3  # same frontier, stops
    torch.testing.assert_close(m.calls[1][0, -4], m.tok_emb.weight[1])  # E[top1], not a mix
    assert _decoded_cells(m, 2, 4) == [True, True, False, False]


def test_soft_decoding_stops_when_all_confident_and_at_the_step_bound():
    m = Scripted(lambda k: ([1, 2, 3, 4], [0.95] * 4), n_blocks=2)
    with torch.no_grad():
        r = dmax_generate(m, None, [[0]], gen_length=8, block_length=4, mask_id=7, eos_id=6,
                          pad_id=5)  # fmt: skip
    assert r.stats.nfe == 2 and r.stats.per_block_nfe == [1, 1] and r.stats.tpf == 4.0
    flip = Scripted(lambda k: ([1 + k % 2] * 4, [0.6] * 4))  # never confident, always changing
    with torch.no_grad():
        r = dmax_generate(flip, None, [[0]], gen_length=4, block_length=4, tau=0.5,
                          max_steps_per_block=5, mask_id=7, eos_id=6, pad_id=5)  # fmt: skip
    assert r.stats.nfe == 5


# ----------------------------------------------------------------- learning test (SYNTHETIC)
EOS, PAD, SEP = 12, 13, 10


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
def test_fit_kind_dmax_from_a_checkpoint_and_generate_with_dmax(tmp_path, capsys):
    from lm_core.checkpoint import load_checkpoint, save_checkpoint
    from lm_core.cli import main as cli_main
    from lm_core.commands.fit import parse, run
    from lm_core.data.tokenizers import ByteTokenizer

    tok = ByteTokenizer()
    init = Transformer(ModelConfig(vocab_size=259, d_model=32, n_layers=1, n_heads=2,
                                   max_seq_len=256))  # fmt: skip
    save_checkpoint(tmp_path / "init", init, tok)
    cfg = parse(["--config", str(ROOT / "configs/lm/tiny-dmax.yaml"), "--out_dir",
                 str(tmp_path / "run"), "--trainer.progress_bar", "false",
                 "--trainer.max_steps", "4", "--trainer.val_check_interval", "4",
                 "--init_from", str(tmp_path / "init")])  # fmt: skip
    assert cfg.objective.kind == "dmax" and cfg.objective.dmax_share == 0.5
    trainer, module = run(cfg)
    assert trainer.global_step == 4 and module.model_cfg.d_model == 32  # the checkpoint's shape
    assert torch.isfinite(torch.tensor(float(trainer.callback_metrics["val/loss"])))
    model, _, meta = load_checkpoint(tmp_path / "run" / "final")
    assert meta["objective"] == "dmax"
    code = cli_main(["generate", "--ckpt", str(tmp_path / "run" / "final"), "--prompt", "To be",
                     "--sampler", "dmax", "--gen-length", "8", "--block-length", "4",
                     "--tau", "0.5"])  # fmt: skip
    assert code == 0
    assert "sampler=dmax" in capsys.readouterr().out
