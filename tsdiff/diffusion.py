"""Masked diffusion on numeric horizons: lm_core's objective and commit policies.

Training is :func:`lm_core.objectives.masked_diffusion_loss` with the horizon cells as the
maskable part (unobserved targets are never maskable and never scored). Forecasting
(:func:`hard_paths`) follows lm_core's sampler loop (:func:`lm_core.solvers.denoise`: blocks,
an lm_core commit policy per step) with a step schedule of its own, over a canvas of H * C
hidden cells, the context's keys/values computed once per window and shared by all S paths and
all steps (the set-up is :meth:`tsdiff.model.NumericDenoiser.horizon`; :mod:`tsdiff.sampling`
picks the sampler).

Commitment order: the ``order`` rule ranks hidden cells by a property of their predictive
distribution computed *before* the value is drawn (``entropy``: lowest entropy first; ``margin``),
or at random (``random``). ``prob`` (the probability of the drawn value, LLaDA's rule for text)
is kept for comparison only: it depends on the draw and pulls paths toward the mode.

Speed (issue 20, ``benchmarks/forecast_nfe.py``): every call after the first runs the network on
every path, so the cost is about (NFE - 1) x paths x cells. The ``schedule``
(:func:`commit_counts`: ``cosine`` commits few cells first) and ``branch`` (paths per network row
in the last step, :func:`branch_last_step`) set how far the default (NFE 2, cosine, 4) gets
below one cell per step while keeping the paths' horizon sums as coherent.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from lm_core.objectives.masked import masked_diffusion_loss
from lm_core.solvers import DistributionOrder, LowConfidence, SampleStats
from lm_core.solvers.policies import confidence_scores
from tsdiff.model import NumericDenoiser, PathRows

ORDERS = ("entropy", "margin", "random", "prob")
SCHEDULES = ("linear", "cosine")


DEFAULT_STEPS = 2
"""Default NFE per path of the masked sampler (any horizon; see SamplerSection.steps)."""


def default_steps(H: int) -> int:
    """The default NFE per path for a horizon of H steps: :data:`DEFAULT_STEPS` (at most H)."""
    return max(1, min(DEFAULT_STEPS, H))


def horizon_loss(
    model: NumericDenoiser, batch: dict, *, eps: float = 1e-3, generator=None
) -> tuple[Tensor, dict]:
    """Masked-diffusion ELBO over horizon cells of a batch of windows (see windows.py shapes)."""
    hz = model.horizon(batch)
    tokens, obs = model.target_tokens(hz.scaled)

    def model_fn(x_t: Tensor, **_) -> Tensor:
        return model.horizon_logits(x_t, hz.static, hz.kvs, hz.positions)

    return masked_diffusion_loss(
        model_fn, tokens, mask_id=model.encoder.mask_id, maskable=obs, eps=eps, generator=generator
    )


def resolve_schedule(H: int, C: int, steps: int | None, block_length: int | None):
    """(steps, block_length in cells) with defaults: one block, steps = steps = :func:`default_steps`."""
    n = H * C
    block_length = n if block_length is None else block_length * C
    steps = default_steps(H) if steps is None else steps
    n_blocks = max(n // block_length, 1)
    if steps % n_blocks:
        steps = n_blocks * max(1, round(steps / n_blocks))
    return steps, block_length


def commit_counts(n: int, steps: int, schedule: str = "linear") -> list[int]:
    """Cells committed by each step of a block of ``n`` cells filled in ``steps`` steps (at most
    n steps: each commits at least one cell; the counts sum to n).

    ``linear``: LLaDA's schedule, n // steps each, the remainder one each over the first steps
    (:func:`lm_core.solvers.loop.num_transfer_tokens`). ``cosine``: MaskGIT's, round(n cos(pi/2
    s / steps)) cells still hidden after step s: few cells first, each drawn from its marginal
    given the context, then more and more cells per step, each drawn given all earlier draws.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    steps = max(1, min(steps, n))
    if schedule == "linear":
        return [n // steps + (s < n % steps) for s in range(steps)]
    hidden = [round(n * math.cos(math.pi / 2 * s / steps)) for s in range(steps + 1)]
    for s in range(1, steps):  # strictly decreasing, and room for one cell per later step
        hidden[s] = max(min(hidden[s], hidden[s - 1] - 1), steps - s)
    return [hidden[s] - hidden[s + 1] for s in range(steps)]


def shared_first_step(
    model: NumericDenoiser,
    static: Tensor,
    kvs: list,
    positions: Tensor,
    num_samples: int,
    *,
    n_commit: int,
    order: str,
    temperature: float,
    generator: torch.Generator | None,
    first_block: int | None = None,
) -> Tensor:
    """The first sampler step, done once per window: all S paths of a window still hold the
    all-MASK canvas, so they share the logits and, for a value-independent order fixed by those
    logits (entropy, margin), the cells to commit. The network runs on one row per window, the
    order is ranked once, and the S values of each committed cell are S inverse-CDF draws
    (float64) from that cell's distribution at ``temperature``: the same distribution as running
    :class:`lm_core.solvers.DistributionOrder` on every path, without S copies of the logits.

    Args:
        static: [w, H*C, d] horizon embeddings of the w windows; kvs: their cached context.
        n_commit: cells committed by this step (the first count of the step schedule).
        first_block: cells of the first block (the step commits only among the first
            ``first_block`` cells; default all).

    Returns:
        canvas [w * S, H*C] (window-major) with the committed cells drawn, MASK elsewhere.
    """
    w, N = static.shape[:2]
    mask_id = model.encoder.mask_id
    canvas = torch.full((w, N), mask_id, dtype=torch.long, device=static.device)
    logits = model.horizon_logits(canvas, static, kvs, positions) / temperature  # [w, N, V]
    score = confidence_scores(logits, canvas, order)
    if first_block is not None and first_block < N:
        score[:, first_block:] = float("-inf")
    cells = score.argsort(dim=-1, descending=True, stable=True)[:, :n_commit]  # [w, k]
    chosen = logits.gather(1, cells[..., None].expand(-1, -1, logits.shape[-1]))
    cdf = torch.softmax(chosen.double(), dim=-1).cumsum(-1)  # [w, k, V]
    u = torch.rand(
        (w, n_commit, num_samples), dtype=torch.float64, device=cdf.device, generator=generator
    )
    ids = torch.searchsorted(cdf, u * cdf[..., -1:]).clamp_max(cdf.shape[-1] - 1)  # [w, k, S]
    out = canvas[:, None].repeat(1, num_samples, 1)  # [w, S, N]
    out.scatter_(2, cells[:, None].expand(-1, num_samples, -1), ids.transpose(1, 2))
    return out.view(w * num_samples, N)


def hard_paths(
    model: NumericDenoiser,
    rows: PathRows,
    *,
    order: str,
    steps: int | None,
    block_length: int | None,
    temperature: float,
    generator: torch.Generator | None,
    schedule: str = "linear",
    branch: int = 1,
) -> tuple[Tensor, SampleStats]:
    """Hard commitment (a drawn cell is final) for the S paths of w windows.

    Blocks of ``block_length`` time steps are filled left to right, each in steps // blocks
    network calls that commit :func:`commit_counts` cells (``schedule``), the cells picked by
    the ``order`` rule; a window's first call runs once per window (:func:`shared_first_step`,
    or, for ``random`` and ``prob``, one row per window whose logits are repeated).

    ``branch`` > 1: each of the S rows of a window (``rows.num_samples``) branches into
    ``branch`` paths at the last step: the cells that step commits are drawn ``branch`` times
    from the row's last logits (cells drawn in one step are independent given the canvas, so
    each path is still a draw from the sampler's joint), the cells of earlier steps are shared
    by the ``branch`` paths of a row. The network runs on S rows, not S * branch.

    Returns:
        z [w, S * branch, H, C] in context-scaled units (bin centres) and the sampler's stats.
    """
    cfg = model.cfg
    C = cfg.n_channels
    H = rows.static.shape[1] // C  # the batch's horizon (tsdiff.model.horizon_static)
    steps, bl = resolve_schedule(H, C, steps, block_length)
    counts = commit_counts(bl, steps // (H * C // bl), schedule)
    if order == "prob":  # value-dependent order: draw every hidden cell, commit the likeliest draws
        policy = LowConfidence(temperature=1.0, confidence="prob")
    else:  # order fixed before drawing; values drawn only for the committed cells
        policy = DistributionOrder(order=order, temperature=1.0)
    S, mask_id = rows.num_samples, model.encoder.mask_id
    w, n = rows.static1.shape[0], rows.static.shape[0]
    st, kv, st1, kv1, pos = rows.static, rows.kvs, rows.static1, rows.kvs1, rows.positions

    def model_fn(x: Tensor) -> Tensor:
        # x [w*S, H*C]. When the S paths of every window hold the same canvas (the first step:
        # nothing drawn yet), their logits are equal: evaluate one row per window, then repeat.
        xs = x.view(w, S, -1)
        if S > 1 and bool((xs == xs[:, :1]).all()):
            one = model.horizon_logits(xs[:, 0], st1, kv1, pos[:w]) / temperature
            return one.repeat_interleave(S, 0)
        return model.horizon_logits(x, st, kv, pos) / temperature

    canvas = torch.full((n, H * C), mask_id, dtype=torch.long, device=st.device)
    cell = torch.arange(H * C, device=st.device)
    stats, t0 = SampleStats(rows=n), time.perf_counter()
    n_blocks = H * C // bl
    for b in range(n_blocks):
        in_block = ((cell >= b * bl) & (cell < (b + 1) * bl))[None].expand(n, -1)
        for s, k in enumerate(counts):
            last = b == n_blocks - 1 and s == len(counts) - 1
            if b == 0 and s == 0 and order in ("entropy", "margin"):
                paths = S * branch if last else S  # one step in all: every path its own draws
                canvas = shared_first_step(
                    model, st1, kv1, pos[:w], paths, n_commit=k, order=order,
                    temperature=temperature, generator=generator, first_block=bl,
                )  # fmt: skip
                commit = canvas != mask_id
            elif last and branch > 1:  # all hidden cells left, drawn branch times per row
                hidden = in_block & (canvas == mask_id)
                canvas = branch_last_step(model_fn(canvas), canvas, hidden, branch, generator)
                commit = canvas != mask_id
            else:
                hidden = in_block & (canvas == mask_id)
                kk = torch.full((n,), k, dtype=torch.long, device=st.device)
                x0, commit = policy.step(model_fn(canvas), hidden, kk, generator)
                commit = commit & hidden
                canvas = torch.where(commit, x0, canvas)
            stats.nfe += 1
            stats.committed += int(commit.sum())
        stats.per_block_nfe.append(len(counts))
    stats.seconds = time.perf_counter() - t0
    return model.encoder.decode(canvas, generator=generator).view(w, -1, H, C), stats


def branch_last_step(
    logits: Tensor, canvas: Tensor, hidden: Tensor, branch: int, generator=None
) -> Tensor:
    """The last sampler step, branched: every hidden cell of each row drawn ``branch`` times
    (inverse CDF in float64) from the row's logits.

    Args:
        logits: [n, N, V] (temperature applied); canvas: [n, N] bin ids or MASK;
        hidden: bool [n, N], the same number of cells in every row (the last step's count).

    Returns:
        canvas [n * branch, N] (row-major: the ``branch`` paths of a row together), filled.
    """
    n, N = canvas.shape
    k = int(hidden[0].sum())
    cdf = torch.softmax(logits[hidden].double(), dim=-1).cumsum(-1)  # [n * k, V]
    u = torch.rand(
        (cdf.shape[0], branch), dtype=torch.float64, device=cdf.device, generator=generator
    )
    ids = torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_max(cdf.shape[-1] - 1)  # [n * k, p]
    out = canvas[:, None].repeat(1, branch, 1)  # [n, p, N]
    out[hidden[:, None].expand(-1, branch, -1)] = ids.view(n, k, branch).transpose(1, 2).flatten()
    return out.view(n * branch, N)
