"""Scoring: the stratified ELBO against exact enumeration, perplexities, choice scores."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from lm_core import ModelConfig, Transformer
from lm_core.text.scoring import (
    ar_perplexity,
    choice_scores,
    confidence_score,
    continuation_loglik,
    elbo_perplexity,
    rolling_chunks,
    stratified_mask_counts,
)

MASK = 258


def _model(causal=False, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=259, d_model=32, n_layers=2, n_heads=4, max_seq_len=32,
                      init_std=0.2, causal=causal)  # fmt: skip
    return Transformer(cfg).double().eval()


@torch.no_grad()
def exact_elbo(model, prompt, cont):
    """E_k E_M [(L/k) sum_{i in M} log p(c_i | ...)] by enumerating every mask set."""
    L, total = len(cont), 0.0
    for k in range(1, L + 1):
        sets = list(itertools.combinations(range(L), k))
        acc = 0.0
        for M in sets:
            x = torch.tensor(prompt + [MASK if i in M else c for i, c in enumerate(cont)])[None]
            logp = torch.log_softmax(model(x)[0, len(prompt) :], -1)
            acc += (L / k) * sum(logp[i, cont[i]].item() for i in M)
        total += acc / len(sets) / L
    return total


def test_stratified_counts_cover_1_to_L_evenly():
    k = stratified_mask_counts(5, 20, torch.Generator().manual_seed(0))
    assert sorted(torch.bincount(k, minlength=6).tolist()[1:]) == [4, 4, 4, 4, 4]


def test_single_token_is_exact():
    m = _model()
    est, se = continuation_loglik(m, [1, 2, 3], [7], mask_id=MASK, n_samples=4, batch_size=2)
    x = torch.tensor([[1, 2, 3, MASK]])
    exact = torch.log_softmax(m(x)[0, 3], -1)[7].item()
    assert est == pytest.approx(exact, abs=1e-9) and se == pytest.approx(0.0, abs=1e-9)


def test_elbo_estimate_matches_enumeration():
    m = _model()
    prompt, cont = [10, 20, 30], [40, 50, 60, 70]
    exact = exact_elbo(m, prompt, cont)
    est, se = continuation_loglik(m, prompt, cont, mask_id=MASK, n_samples=256, batch_size=64)
    assert 0 < se < 1.0
    assert abs(est - exact) < 4 * se, (est, exact, se)
    # the batch size only changes how samples are grouped, never the result
    est2, _ = continuation_loglik(m, prompt, cont, mask_id=MASK, n_samples=256, batch_size=7)
    assert est2 == pytest.approx(est, rel=1e-9)


def test_elbo_is_below_loglik_of_a_better_continuation():
    m = _model()
    est, _ = continuation_loglik(m, [1], [2, 3], mask_id=MASK, n_samples=64)
    assert est < 0


def test_rolling_chunks_cover_each_token_once():
    chunks = rolling_chunks(100, 32, 8)
    scored = [i for _, s, e in chunks for i in range(s, e)]
    assert scored == list(range(1, 100))
    assert all(e - a <= 32 and s - a <= 8 or a == 0 for a, s, e in chunks)
    with pytest.raises(ValueError, match="context"):
        rolling_chunks(10, 8, 8)


def test_ar_perplexity_exact_and_elbo_bound():
    ar = _model(causal=True)
    doc = list(range(40, 90))
    r = ar_perplexity(ar, [doc], context=8)
    nll = 0.0
    for a, s, e in rolling_chunks(len(doc), 32, 8):
        logits = ar(torch.tensor(doc[a:e])[None])[0]
        nll += F.cross_entropy(
            logits[s - a - 1 : e - a - 1], torch.tensor(doc[s:e]), reduction="sum"
        ).item()
    assert r.exact and r.n_tokens == 49 and r.ppl == pytest.approx(math.exp(nll / 49), rel=1e-9)
    with pytest.raises(ValueError, match="causal"):
        ar_perplexity(_model(), [doc])
    b = elbo_perplexity(
        _model(), [doc, doc[:10]], mask_id=MASK, n_samples=8, batch_size=8, context=8
    )
    assert b.n_tokens == 49 + 9 and b.ppl_low < b.ppl < b.ppl_high and b.stderr > 0


def test_confidence_score_definition():
    m = _model()
    q, c = [5, 6], [7, 8, 9]
    x = torch.tensor([q + [MASK] * 3])
    hidden, total = [0, 1, 2], 0.0
    for _ in range(3):
        logp = torch.log_softmax(m(x)[0, 2:], -1)
        vals = {i: logp[i, c[i]].item() for i in hidden}
        i = max(vals, key=vals.get)
        total += vals[i]
        x[0, 2 + i] = c[i]
        hidden.remove(i)
    assert confidence_score(m, q, c, mask_id=MASK) == pytest.approx(total / 3, rel=1e-9)


class Prefers(torch.nn.Module):
    """Fake model whose predictions favour token 65 everywhere."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.cfg = ModelConfig(vocab_size=259, d_model=8, n_heads=2, n_layers=1, max_seq_len=32)

    def forward(self, x, **kw):
        logits = torch.zeros(*x.shape, 259)
        logits[..., 65] = 4.0
        return logits


def test_choice_scores_pick_the_likely_choice():
    choices = [[66, 66], [65, 65], [67]]
    for method in ("likelihood", "confidence"):
        s = choice_scores(Prefers(), [1, 2], choices, mask_id=MASK, method=method, n_samples=8)
        assert max(range(3), key=s.__getitem__) == 1
    raw = choice_scores(Prefers(), [1], choices, mask_id=MASK, length_normalise=False, n_samples=8)
    norm = choice_scores(Prefers(), [1], choices, mask_id=MASK, n_samples=8)
    assert raw[0] == pytest.approx(2 * norm[0])
    with pytest.raises(ValueError, match="method"):
        choice_scores(Prefers(), [1], choices, mask_id=MASK, method="vote")
    with pytest.raises(ValueError, match="cont_ids"):
        continuation_loglik(Prefers(), [1], [], mask_id=MASK)
