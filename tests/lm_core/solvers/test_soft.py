"""DMax soft decoding (lm_core.solvers.soft): soft embeddings, the frontier, scripted decoders."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from lm_core.solvers.soft import advance_frontier, soft_embedding
from lm_core.text.generate import dmax_generate

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
MASK = 11

EOS, PAD, SEP = 12, 13, 10


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
