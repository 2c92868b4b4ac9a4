"""Commit policies: given the denoiser's logits, propose values and choose which cells to commit.

Every policy has ``step(logits, active, n_commit, generator) -> (x0, commit)``:

- ``logits``: [B, L, V] noise-free logits of the current canvas.
- ``active``: bool [B, L], cells still hidden in the active block.
- ``n_commit``: long [B], how many cells the step schedule asks for in this step (fixed-count
  policies obey it; threshold policies use it only as the fallback minimum).
- returns ``x0`` [B, L] proposed values and ``commit`` bool [B, L] (a subset of ``active``).

Confidence scores (higher = commit earlier):

- ``prob``: probability of the drawn value x0 (LLaDA low-confidence remasking). It depends on
  the value drawn, which is right for text but pulls numeric sample paths toward the mode.
- ``margin``: p1 - p2 of the two most probable values.
- ``entropy``: negative entropy of the predictive distribution (Dream); computed before sampling,
  so the order does not depend on the value drawn.
- ``random``: uniform random order (the control).

Random numbers. ``generator`` is either one ``torch.Generator`` (draws cover the whole
[B, L(, V)] tensor, so they depend on the batch's shape) or a sequence of B generators, one per
row: then each row draws only for its own ``active`` cells, in canvas order, so a row's draws do
not depend on the other rows, on left padding or on the canvas length. The text generation layer
uses per-row generators to make batched generation identical to generating each prompt alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

CONFIDENCES = ("prob", "margin", "entropy", "random")


def is_per_row(generator) -> bool:
    """True when ``generator`` is a sequence of per-row generators."""
    return isinstance(generator, (list, tuple))


def uniform_like(
    shape: tuple[int, ...],
    generator,
    *,
    active: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    fill: float = 0.5,
) -> Tensor:
    """U(0, 1) numbers of ``shape`` = [B, L, *rest].

    One generator (or None): a single draw over the whole shape. A sequence of B generators:
    row b draws [n_active_b, *rest] numbers from ``generator[b]`` for its ``active`` cells
    (bool [B, L], default all) in canvas order; other cells get ``fill``.
    """
    if not is_per_row(generator):
        return torch.rand(shape, dtype=dtype, device=device, generator=generator)
    B, L = shape[:2]
    if len(generator) != B:
        raise ValueError(f"generator: expected {B} per-row generators, got {len(generator)}")
    if active is None:
        active = torch.ones(B, L, dtype=torch.bool, device=device)
    out = torch.full(shape, fill, dtype=dtype, device=device)
    for b in range(B):
        idx = active[b].nonzero().squeeze(-1)
        if idx.numel():
            draw = torch.rand(
                (idx.numel(), *shape[2:]), dtype=dtype, device=device, generator=generator[b]
            )
            out[b, idx] = draw
    return out


def gumbel_sample(logits: Tensor, temperature: float, generator=None, active=None) -> Tensor:
    """Gumbel-max draw at ``temperature`` computed in float64 (argmax when temperature == 0).

    logits [B, L, V] (or any [..., V] with a single generator) -> ids [B, L]: the argmax of
    logits / T + g with g ~ Gumbel(0, 1), i.e. a draw from softmax(logits / T). Float64 matters:
    low-precision Gumbel noise is visibly biased. ``active`` bool [B, L] limits per-row draws.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    lf = logits.double() / temperature
    u = uniform_like(
        tuple(lf.shape), generator, active=active, dtype=torch.float64, device=lf.device
    )
    g = -torch.log(-torch.log(u.clamp_min(1e-300)))
    return (lf + g).argmax(-1)


def confidence_scores(
    logits: Tensor, x0: Tensor, kind: str, generator=None, active: Tensor | None = None
) -> Tensor:
    """Confidence of each cell, [B, L] float32, from noise-free logits [B, L, V] and draws x0."""
    if kind == "random":
        return uniform_like(tuple(x0.shape), generator, active=active, device=x0.device)
    probs = torch.softmax(logits.float(), dim=-1)
    if kind == "prob":
        return probs.gather(-1, x0[..., None]).squeeze(-1)
    if kind == "margin":
        top2 = probs.topk(2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    if kind == "entropy":
        return (probs * torch.log(probs.clamp_min(1e-12))).sum(-1)
    raise ValueError(f"confidence: expected one of {CONFIDENCES}, got {kind!r}")


def top_k_mask(score: Tensor, active: Tensor, k: Tensor) -> Tensor:
    """bool [B, L]: the k[b] highest-scoring active cells of each row."""
    s = score.masked_fill(~active, float("-inf"))
    order = s.argsort(dim=-1, descending=True, stable=True)  # ties: leftmost cell first
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(s.shape[-1], device=s.device).expand_as(order))
    return (rank < k[:, None]) & active


@dataclass
class LowConfidence:
    """Fixed-count commitment (LLaDA): each step commits the n_commit most confident cells."""

    temperature: float = 0.0
    confidence: str = "prob"

    #: a fixed-count policy follows the step schedule exactly
    dynamic = False

    def __post_init__(self) -> None:
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence: expected one of {CONFIDENCES}, got {self.confidence!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature: expected >= 0, got {self.temperature}")

    def step(self, logits, active, n_commit, generator=None):
        x0 = gumbel_sample(logits, self.temperature, generator, active)
        score = confidence_scores(logits, x0, self.confidence, generator, active)
        return x0, top_k_mask(score, active, n_commit)


def RandomRemasking(temperature: float = 0.0) -> LowConfidence:  # noqa: N802
    """The control: fixed counts, uniformly random order."""
    return LowConfidence(temperature=temperature, confidence="random")


@dataclass
class Threshold:
    """Confidence-threshold parallel decoding (Fast-dLLM).

    Commits every active cell whose confidence is at least ``tau``, and at least one cell (the most
    confident) per step, so every step makes progress.
    """

    tau: float = 0.9
    temperature: float = 0.0
    confidence: str = "prob"

    dynamic = True

    def __post_init__(self) -> None:
        if not (0.0 < self.tau <= 1.0):
            raise ValueError(f"tau: expected a number in (0, 1], got {self.tau}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence: expected one of {CONFIDENCES}, got {self.confidence!r}")

    def step(self, logits, active, n_commit, generator=None):
        x0 = gumbel_sample(logits, self.temperature, generator, active)
        score = confidence_scores(logits, x0, self.confidence, generator, active)
        commit = (score >= self.tau) & active
        at_least_one = top_k_mask(score, active, torch.ones_like(n_commit))
        return x0, commit | at_least_one


SAMPLERS = ("low_confidence", "threshold", "random")


def make_policy(
    sampler: str, *, temperature: float = 0.0, tau: float = 0.9, confidence: str = "prob"
):
    """Policy by name: ``low_confidence`` (LLaDA), ``threshold`` (Fast-dLLM) or ``random``."""
    if sampler == "low_confidence":
        return LowConfidence(temperature=temperature, confidence=confidence)
    if sampler == "threshold":
        return Threshold(tau=tau, temperature=temperature, confidence=confidence)
    if sampler == "random":
        return RandomRemasking(temperature=temperature)
    raise ValueError(f"sampler: expected one of {SAMPLERS}, got {sampler!r}")


@dataclass
class DistributionOrder:
    """Fixed-count commitment ordered by a property of each cell's distribution, not of its draw.

    The cells to commit are ranked *before* any value is drawn (``entropy``: lowest entropy first;
    ``margin``: largest p1 - p2 first; ``random``), then values are drawn at ``temperature`` only for
    the committed cells (inverse-CDF in float64). Because the order ignores the draws, sample paths
    are not pulled toward the mode; this is the default commit rule for numeric horizons
    (tsdiff), where paths must be draws from the predictive distribution.
    """

    order: str = "entropy"
    temperature: float = 1.0

    dynamic = False

    def __post_init__(self) -> None:
        if self.order not in ("entropy", "margin", "random"):
            raise ValueError(f"order: expected entropy, margin or random, got {self.order!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature: expected a positive number, got {self.temperature}")

    def step(self, logits, active, n_commit, generator=None):
        if self.order == "random":
            score = torch.rand(active.shape, device=active.device, generator=generator)
        else:
            dummy = torch.zeros(active.shape, dtype=torch.long, device=active.device)
            score = confidence_scores(logits, dummy, self.order)
        commit = top_k_mask(score, active, n_commit)
        x0 = torch.zeros(active.shape, dtype=torch.long, device=active.device)
        if bool(commit.any()):
            probs = torch.softmax(logits[commit].double() / self.temperature, dim=-1)
            cdf = probs.cumsum(-1)
            u = torch.rand(
                cdf.shape[0], 1, dtype=torch.float64, device=cdf.device, generator=generator
            )
            idx = torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_max(cdf.shape[-1] - 1)
            x0[commit] = idx.squeeze(-1)
        return x0, commit
