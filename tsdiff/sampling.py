"""Sample paths of a :class:`~tsdiff.model.NumericDenoiser`: one table from (mode, commit) to
the sampler, one driver around it.

Every sampler has the signature of :func:`tsdiff.diffusion.hard_paths`: the model, the
:class:`~tsdiff.model.PathRows` of a few windows (their context encoded once by
:meth:`~tsdiff.model.NumericDenoiser.horizon`) and the sampler settings in, paths in
context-scaled units ``[w, S, H, C]`` and :class:`SampleStats` out. :func:`sample_paths` checks
the settings, sets up the horizon once, runs the sampler over chunks of windows and decodes to
data units in one place (:meth:`tsdiff.model.Horizon.to_data_units`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lm_core.solvers import SampleStats
from tsdiff.diffusion import ORDERS, SCHEDULES, hard_paths
from tsdiff.flow import flow_paths
from tsdiff.model import NumericDenoiser
from tsdiff.soft_commit import soft_paths

COMMITS = ("hard", "soft")
PRECISIONS = ("32", "bf16")
SAMPLERS = {
    ("masked", "hard"): hard_paths,
    ("masked", "soft"): soft_paths,
    # the flow commits nothing (every cell moves at every ODE step): ``commit`` has no effect
    ("flow", "hard"): flow_paths,
    ("flow", "soft"): flow_paths,
}

__all__ = ["COMMITS", "ORDERS", "SAMPLERS", "SCHEDULES", "SampleStats", "sample_paths"]


def check_options(
    order: str, temperature: float, commit: str, precision: str, schedule: str = "linear"
) -> None:
    """One-line ValueError naming the sampler option that is out of range."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")
    if temperature <= 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature}")
    if commit not in COMMITS:
        raise ValueError(f"commit: expected 'hard' or 'soft', got {commit!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected '32' or 'bf16', got {precision!r}")


@torch.no_grad()
def sample_paths(
    model: NumericDenoiser,
    batch: dict,
    num_samples: int,
    *,
    order: str = "entropy",
    steps: int | None = None,
    block_length: int | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    max_tokens: int = 2**17,
    commit: str = "hard",
    precision: str = "32",
    schedule: str = "linear",
    branch: int = 1,
) -> tuple[Tensor, SampleStats]:
    """Draw sample paths for a batch of windows.

    Args:
        batch: window tensors (windows.py); ``fut``/``fut_obs`` are not needed.
        num_samples: S paths per window, drawn in batched calls of whole windows, as many as
            keep rows x (context + horizon tokens) within ``max_tokens`` (bounds the memory of
            the repeated context keys/values and the logits; at least one window per call).
            While the S paths of a window still share one canvas (the first step of the masked
            mode) the network runs once per window, not once per path.
        order: commitment order rule, one of ``ORDERS`` (masked mode).
        steps: network evaluations per path (NFE); default
            :func:`tsdiff.diffusion.default_steps` (flow: ceil(H / 4)). ``steps = H * C``
            commits one cell per step; fewer steps commit several cells per step.
        block_length: horizon time steps per semi-autoregressive block (default: whole horizon).
        temperature: softmax temperature of the cell distributions (1 = the model's predictive
            distribution; the forecaster may set a calibrated value fitted on validation windows;
            in flow mode the scale of the initial noise).
        commit: ``hard`` (a drawn cell is final) or ``soft`` (masked mode: drawn cells of the
            active block are re-predicted and re-drawn each step, fed as soft embeddings; see
            :mod:`tsdiff.soft_commit`; same NFE; ``order`` must not be ``prob``).
        schedule: cells committed per step (masked mode, :func:`tsdiff.diffusion.commit_counts`):
            ``linear`` (the same number each step) or ``cosine`` (MaskGIT: few first, most
            last); the flow has no commitments and ignores it.
        branch: paths per network row (hard masked sampler): ceil(S / branch) rows per window
            run the sampler and each branches into ``branch`` paths at its last step
            (:func:`tsdiff.diffusion.hard_paths`): the network cost of S / branch paths; the
            paths of a row share the cells of earlier steps. Soft commitment and the flow
            ignore it.
        precision: ``32`` or ``bf16`` (the network runs under bfloat16 autocast; about 2.5x
            faster on CPUs with AVX512-BF16 and on GPUs; logits and values stay float32).

    Returns:
        samples [B, S, H, C] in the data's units, and the sampler's stats (nfe is per path).
    """
    check_options(order, temperature, commit, precision, schedule)
    if not isinstance(branch, int) or branch < 1:
        raise ValueError(f"branch: expected a positive integer, got {branch!r}")
    sampler = SAMPLERS[(model.cfg.mode, commit)]
    if sampler is not hard_paths:  # soft commitment and the flow do not branch
        branch = 1
    extra = {"branch": branch} if branch > 1 else {}
    rows_per_window = -(-num_samples // branch)
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        hz = model.horizon(batch)
        outs, total = [], SampleStats(rows=0)
        for _, _, rows in hz.chunks(rows_per_window, max_tokens):
            z, stats = sampler(
                model, rows, order=order, steps=steps, block_length=block_length,
                temperature=temperature, generator=generator, schedule=schedule, **extra,
            )  # fmt: skip
            outs.append(z[:, :num_samples])
            total.nfe = stats.nfe
            total.committed += stats.committed
            total.rows += stats.rows
            total.seconds += stats.seconds
        return hz.to_data_units(torch.cat(outs, 0)), total
