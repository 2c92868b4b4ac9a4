"""The one sampler loop: owns blocks, model calls and counting; a policy decides what to commit.

The loop works on any canvas: a [B, L] tensor of ids with an ``editable`` mask of hidden cells
(all set to ``mask_id`` at the start). Editable cells are split, in canvas order and per row, into
blocks of ``block_length``; blocks are filled left to right (semi-autoregressive), each in
``steps // n_blocks`` steps for fixed-count policies, or until empty for dynamic ones.
Extra conditioning (covariates, attention masks, positions) is passed to ``model_fn`` untouched.

Randomness comes only from the policy, through ``generator``: one ``torch.Generator`` or a list
of per-row generators (see :mod:`lm_core.solvers.policies`), which makes each row's result
independent of the rest of the batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class SampleStats:
    """What one sampler call cost: forward passes (NFE), committed cells and wall-clock."""

    nfe: int = 0
    committed: int = 0
    rows: int = 1
    seconds: float = 0.0
    per_block_nfe: list[int] = field(default_factory=list)
    passes: int = 0
    """model runs, when the caller counts them apart from NFE (a cache's extra runs)"""

    @property
    def tpf(self) -> float:
        """Tokens (cells) committed per forward pass, per row."""
        return self.committed / max(self.rows, 1) / max(self.nfe, 1)

    @property
    def tokens_per_second(self) -> float:
        return self.committed / max(self.seconds, 1e-9)


def num_transfer_tokens(n_masked: Tensor, steps: int) -> Tensor:
    """LLaDA's schedule: [B] masked counts -> [B, steps] cells to commit per step.

    floor(n / steps) each step, with the remainder spread one each over the first steps.
    """
    base = n_masked // steps
    rem = n_masked % steps
    counts = base[:, None].repeat(1, steps)
    counts += (torch.arange(steps, device=n_masked.device)[None] < rem[:, None]).long()
    return counts


def block_index(editable: Tensor, block_length: int) -> Tensor:
    """Block number of each editable cell, -1 elsewhere: [B, L] long."""
    rank = editable.long().cumsum(-1) - 1
    return torch.where(editable, rank // block_length, torch.full_like(rank, -1))


def block_span(in_block: Tensor) -> tuple[int, int]:
    """Columns ``(lo, hi)`` of a block that fills ``lo:hi`` in every row of ``in_block`` [B, L]."""
    cols = in_block.any(0).nonzero().squeeze(-1)
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    if not bool(in_block[:, lo:hi].all()) or int(in_block.sum()) != in_block.shape[0] * (hi - lo):
        raise ValueError("a windowed model_fn needs each block in the same columns of every row")
    return lo, hi


def check_schedule(n_editable: int, block_length: int, steps: int) -> int:
    """Validate the (length, block, steps) triple; returns steps per block."""
    if block_length <= 0:
        raise ValueError(f"block_length: expected a positive integer, got {block_length}")
    if n_editable % block_length != 0:
        raise ValueError(
            f"gen_length={n_editable} must be a multiple of block_length={block_length}"
        )
    n_blocks = n_editable // block_length
    if steps <= 0 or steps % n_blocks != 0:
        raise ValueError(
            f"steps={steps} must be a positive multiple of the number of blocks "
            f"(gen_length / block_length = {n_blocks})"
        )
    return steps // n_blocks


@torch.no_grad()
def denoise(
    model_fn: Callable[..., Tensor],
    x: Tensor,
    editable: Tensor,
    *,
    mask_id: int,
    policy,
    steps: int,
    block_length: int | None = None,
    cond: dict | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    on_block_end: Callable[[Tensor, Tensor, int], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Tensor, SampleStats]:
    """Fill every editable cell of ``x`` with the policy's commitments.

    Args:
        model_fn: ``model_fn(x, **cond) -> logits [B, L, V]``; or, when it has ``windowed =
            True`` (:class:`lm_core.solvers.cache.BlockForward`), ``model_fn(x, lo, hi, first,
            **cond) -> logits [B, hi - lo, V]`` of the active block's columns only (``first``
            marks a block's first step); the block must then sit in the same columns of every
            row.
        x: [B, L] canvas; editable cells hold ``mask_id``.
        editable: bool [B, L]; every row must have the same number of editable cells.
        steps: total steps (fixed-count policies: exactly ``steps`` model calls; dynamic
            policies: an upper bound on calls per block of ``steps // n_blocks`` is *not* imposed,
            they stop when the block is full).
        block_length: editable cells per block (default: all in one block).
        cond: extra keyword inputs for model_fn, passed through untouched.
        generator: one generator, or a list of B per-row generators (batch-independent draws).
        on_block_end: ``f(x, editable, block) -> stop``; lets callers end early (e.g. on EOS).
            It may write into ``x`` in place: cells it sets to a value other than ``mask_id``
            are no longer hidden, so later blocks skip them (e.g. a finished row's remaining
            cells filled with EOS).

    Returns:
        the filled canvas [B, L] and :class:`SampleStats`.
    """
    cond = cond or {}
    x = x.clone()
    n_edit = editable.sum(-1)
    if not bool((n_edit == n_edit[0]).all()):
        raise ValueError("every row must have the same number of editable cells")
    n = int(n_edit[0])
    block_length = block_length or n
    steps_per_block = check_schedule(n, block_length, steps)
    blocks = block_index(editable, block_length)
    windowed = getattr(model_fn, "windowed", False)
    stats = SampleStats(rows=x.shape[0])
    t0 = time.perf_counter()
    for b in range(n // block_length):
        in_block = blocks == b
        hidden = in_block & (x == mask_id)
        counts = num_transfer_tokens(hidden.sum(-1), steps_per_block)
        nfe_before = stats.nfe
        lo, hi = block_span(in_block) if windowed else (0, x.shape[1])
        s = 0
        while bool(hidden.any()):
            if not policy.dynamic and s >= steps_per_block:
                break
            if windowed:
                logits = model_fn(x, lo, hi, s == 0, **cond)
            else:
                logits = model_fn(x, **cond)
            if mask_id < logits.shape[-1]:  # never propose the mask token itself
                logits = logits.clone()
                logits[..., mask_id] = float("-inf")
            stats.nfe += 1
            k = counts[:, min(s, steps_per_block - 1)]
            active = hidden[:, lo:hi]
            x0, commit = policy.step(logits, active, k, generator)
            commit = commit & active
            x[:, lo:hi] = torch.where(commit, x0, x[:, lo:hi])
            stats.committed += int(commit.sum())
            hidden[:, lo:hi] = active & ~commit
            s += 1
            if progress is not None:
                progress(1)
        stats.per_block_nfe.append(stats.nfe - nfe_before)
        if on_block_end is not None and on_block_end(x, editable, b):
            break
    stats.seconds = time.perf_counter() - t0
    return x, stats
