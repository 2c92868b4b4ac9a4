"""Likelihood and choice scoring for masked diffusion LMs (and exact scoring for AR models).

**Continuation log-likelihood (LLaDA's estimator).** For a prompt ``p`` and a continuation ``c``
of L tokens, the masked-diffusion ELBO is

    log p(c | p) >= E_k E_M [ (L / k) * sum_{i in M} log p_theta(c_i | p, c with M masked) ],

where k is uniform on 1..L and M is a uniformly random set of k continuation positions (the
prompt is never masked). We draw n samples with **stratified** mask counts: with one offset
u ~ U[0, 1), sample j uses ``k_j = 1 + floor(L * (j + u) / n)`` (clipped to L), so the counts
cover 1..L evenly; positions are drawn uniformly per sample. The estimate is the mean of the n
per-sample values; the standard error is their standard deviation / sqrt(n), which treats the
samples as independent and so over-states the error of the stratified mean (conservative).

**Perplexity.** :func:`elbo_perplexity` sums continuation ELBOs over rolling windows of
``max_seq_len`` tokens (each chunk conditioned on up to ``context`` preceding tokens), so
``exp(-ELBO / n_tokens)`` is an upper bound (in expectation) on the perplexity of that
truncated-context factorisation. :func:`ar_perplexity` is the exact perplexity of a causal model
over the same windows. Both treat each document's first token as given and score the rest
(prepend EOS as a BOS if every real token should count), so the two are directly comparable.

**Choice scoring.** :func:`choice_scores` with ``method="likelihood"`` returns each choice's
ELBO estimate (per token if ``length_normalise``), all choices using the same random numbers
(common random numbers shrink the noise of their differences). ``method="confidence"`` is the
deterministic surrogate defined in :func:`confidence_score`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _wide(t: Tensor) -> Tensor:
    """At least float32 (half-precision logits are widened; float64 stays float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def stratified_mask_counts(L: int, n: int, generator: torch.Generator) -> Tensor:
    """Mask counts k_j in 1..L for n samples, spread evenly with one random offset: [n] long."""
    u = torch.rand((), generator=generator).item()
    k = 1 + torch.floor(L * (torch.arange(n, dtype=torch.float64) + u) / n).long()
    return k.clamp(1, L)


def _elbo_terms(model, prompt: Tensor, cont: Tensor, k: Tensor, mask_id: int, generator) -> Tensor:
    """Per-sample ELBO values [n] for mask counts k [n]; prompt [P], cont [L] on the model device."""
    n, L = k.numel(), cont.numel()
    order = torch.rand(n, L, generator=generator).argsort(-1)  # random positions per sample
    masked = (order < k[:, None]).to(cont.device)  # [n, L], exactly k_j True in row j
    x = torch.cat([prompt.expand(n, -1), cont.expand(n, -1)], dim=1)
    x[:, prompt.numel() :] = torch.where(masked, mask_id, x[:, prompt.numel() :])
    logits = _wide(model(x)[:, prompt.numel() :])
    logp = -F.cross_entropy(logits.transpose(1, 2), cont.expand(n, -1), reduction="none")  # [n, L]
    weight = (L / k.to(logp.device, logp.dtype))[:, None]
    return (logp * masked * weight).sum(-1)


@torch.no_grad()
def continuation_loglik(
    model,
    prompt_ids: Sequence[int],
    cont_ids: Sequence[int],
    *,
    mask_id: int,
    n_samples: int = 64,
    batch_size: int = 16,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[float, float]:
    """Monte-Carlo ELBO of log p(cont | prompt) in nats: ``(estimate, standard error)``.

    Args:
        prompt_ids: P ids (may be empty); never masked.
        cont_ids: L >= 1 ids to score.
        n_samples: Monte-Carlo samples (stratified mask counts, see the module docstring).
        batch_size: samples per forward pass ([batch_size, P + L] ids).
        seed: seeds the mask counts and positions (same seed -> same masks for equal L).
        progress: called with 1 after each forward pass (``ceil(n_samples / batch_size)``).
    """
    if len(cont_ids) == 0:
        raise ValueError("cont_ids: the continuation is empty")
    if n_samples < 1 or batch_size < 1:
        raise ValueError(f"n_samples and batch_size must be >= 1, got {n_samples}, {batch_size}")
    total = len(prompt_ids) + len(cont_ids)
    if total > model.cfg.max_seq_len:
        raise ValueError(
            f"prompt + continuation: {total} tokens exceed max_seq_len={model.cfg.max_seq_len}"
        )
    dev = _device(model)
    prompt = torch.tensor(list(prompt_ids), dtype=torch.long, device=dev)
    cont = torch.tensor(list(cont_ids), dtype=torch.long, device=dev)
    g = torch.Generator().manual_seed(seed)
    k = stratified_mask_counts(len(cont_ids), n_samples, g)
    parts = []
    for kb in k.split(batch_size):
        parts.append(_elbo_terms(model, prompt, cont, kb, mask_id, g))
        if progress is not None:
            progress(1)
    vals = torch.cat(parts).double()
    stderr = (
        float(vals.std(unbiased=True) / math.sqrt(n_samples)) if n_samples > 1 else float("nan")
    )
    return float(vals.mean()), stderr


@dataclass
class PerplexityResult:
    """``ppl`` = exp(nll / n_tokens); ``ppl_low``/``ppl_high`` at nll -/+ 1.96 stderr (0 for
    exact AR scoring); ``nll`` total nats; ``n_tokens`` scored tokens; ``exact`` True for AR."""

    ppl: float
    nll: float
    stderr: float
    n_tokens: int
    ppl_low: float
    ppl_high: float
    exact: bool


def rolling_chunks(n: int, window: int, context: int) -> list[tuple[int, int, int]]:
    """Windows over a document of n tokens: (ctx_start, start, end) scoring tokens start..end-1
    given tokens ctx_start..start-1; token 0 is given; ``context`` < ``window``."""
    if not (0 < context < window):
        raise ValueError(f"context: expected 0 < context < window={window}, got {context}")
    out, start = [], 1
    while start < n:
        ctx_start = max(0, start - context)
        end = min(n, ctx_start + window)
        out.append((ctx_start, start, end))
        start = end
    return out


def _ppl(nll: float, se: float, n: int, exact: bool) -> PerplexityResult:
    n = max(n, 1)
    return PerplexityResult(
        ppl=math.exp(nll / n), nll=nll, stderr=se, n_tokens=n,
        ppl_low=math.exp((nll - 1.96 * se) / n), ppl_high=math.exp((nll + 1.96 * se) / n),
        exact=exact,
    )  # fmt: skip


def elbo_perplexity(
    model,
    docs_ids: Sequence[Sequence[int]],
    *,
    mask_id: int,
    n_samples: int = 64,
    batch_size: int = 16,
    context: int | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> PerplexityResult:
    """ELBO perplexity bound of documents under a masked diffusion LM, with its spread.

    Each document is cut by :func:`rolling_chunks` into windows of ``model.cfg.max_seq_len``
    tokens; a chunk is scored by :func:`continuation_loglik` given its ``context`` preceding
    tokens (default max_seq_len // 2). Chunk estimates are independent, so the total standard
    error is the root of the summed squares. ``progress(1)`` follows every forward pass; they
    number :func:`elbo_passes` in all.
    """
    window = model.cfg.max_seq_len
    context = window // 2 if context is None else context
    nll, var, n_tok = 0.0, 0.0, 0
    for d, doc in enumerate(docs_ids):
        doc = list(doc)
        for c, (a, s, e) in enumerate(rolling_chunks(len(doc), window, context)):
            est, se = continuation_loglik(
                model, doc[a:s], doc[s:e], mask_id=mask_id, n_samples=n_samples,
                batch_size=batch_size, seed=seed + 1000003 * d + c, progress=progress,
            )  # fmt: skip
            nll -= est
            var += 0.0 if math.isnan(se) else se**2
            n_tok += e - s
    return _ppl(nll, math.sqrt(var), n_tok, exact=False)


def elbo_passes(
    doc_lengths: Sequence[int], window: int, *, n_samples: int, batch_size: int, context: int
) -> int:
    """Forward passes :func:`elbo_perplexity` makes over documents of these lengths."""
    per_window = math.ceil(n_samples / batch_size)
    return per_window * sum(len(rolling_chunks(n, window, context)) for n in doc_lengths)


@torch.no_grad()
def ar_perplexity(
    model, docs_ids: Sequence[Sequence[int]], *, context: int | None = None
) -> PerplexityResult:
    """Exact perplexity of a causal model (``model.cfg.causal``) over the same rolling windows
    as :func:`elbo_perplexity`: one forward pass per window."""
    if not model.cfg.causal:
        raise ValueError("ar_perplexity needs a causal model (model.cfg.causal=True)")
    window = model.cfg.max_seq_len
    context = window // 2 if context is None else context
    dev = _device(model)
    nll, n_tok = 0.0, 0
    for doc in docs_ids:
        doc = list(doc)
        for a, s, e in rolling_chunks(len(doc), window, context):
            x = torch.tensor(doc[a:e], dtype=torch.long, device=dev)[None]
            logits = _wide(model(x)[0, s - a - 1 : e - a - 1])
            nll += float(F.cross_entropy(logits, x[0, s - a :], reduction="sum"))
            n_tok += e - s
    return _ppl(nll, 0.0, n_tok, exact=True)


@torch.no_grad()
def confidence_score(
    model, question_ids: Sequence[int], choice_ids: Sequence[int], *, mask_id: int
) -> float:
    """Confidence surrogate of log p(choice | question), in nats per choice token.

    Start with all L choice tokens masked after the question. Repeat L times: run the model; at
    each still-masked choice position i compute q_i = p_theta(true token c_i at i | canvas);
    reveal (set to c_i) the position with the largest q_i and add log q_i. The score is the sum
    divided by L. It is the log-probability of the choice under the model's most confident
    (greedy, true-token-guided) unmasking order, a deterministic surrogate with L passes.
    """
    if len(choice_ids) == 0:
        raise ValueError("choice_ids: a choice is empty")
    dev = _device(model)
    q = torch.tensor(list(question_ids), dtype=torch.long, device=dev)
    c = torch.tensor(list(choice_ids), dtype=torch.long, device=dev)
    P, L = q.numel(), c.numel()
    x = torch.cat([q, torch.full_like(c, mask_id)])[None]
    hidden = torch.ones(L, dtype=torch.bool, device=dev)
    total = 0.0
    for _ in range(L):
        logp = torch.log_softmax(_wide(model(x)[0, P:]), -1).gather(-1, c[:, None]).squeeze(-1)
        i = int(logp.masked_fill(~hidden, float("-inf")).argmax())
        total += float(logp[i])
        x[0, P + i] = c[i]
        hidden[i] = False
    return total / L


def choice_scores(
    model,
    question_ids: Sequence[int],
    choices_ids: Sequence[Sequence[int]],
    *,
    mask_id: int,
    method: str = "likelihood",
    length_normalise: bool = True,
    n_samples: int = 64,
    batch_size: int = 16,
    seed: int = 0,
) -> list[float]:
    """One score per choice (higher = more likely); pick with ``argmax``.

    ``likelihood``: ELBO estimate of log p(choice | question) (:func:`continuation_loglik`,
    every choice with the same ``seed``), divided by the choice length if ``length_normalise``.
    ``confidence``: :func:`confidence_score` (always per token).
    """
    if len(choices_ids) == 0:
        raise ValueError("choices_ids: no choices given")
    if method == "confidence":
        return [confidence_score(model, question_ids, c, mask_id=mask_id) for c in choices_ids]
    if method != "likelihood":
        raise ValueError(f"method: expected 'likelihood' or 'confidence', got {method!r}")
    out = []
    for c in choices_ids:
        est, _ = continuation_loglik(
            model, question_ids, c, mask_id=mask_id, n_samples=n_samples,
            batch_size=batch_size, seed=seed,
        )  # fmt: skip
        out.append(est / len(c) if length_normalise else est)
    return out
