"""Post-training calibration of sample paths on held-out windows.

Two knobs, fitted after training by minimising the fair CRPS of validation windows:

- **temperature** (sampler side): the softmax temperature of the cell distributions (masked mode)
  or the initial-noise scale (flow mode). It changes what the sampler draws, so it can move each
  cell's mean as well as its spread.
- **spread** (output side): a centre-preserving dispersion factor lambda applied to finished paths,
  ``x' = m + lambda (x - m)`` with ``m`` the mean over the S paths of each window, step and
  channel. Means are untouched by construction, so differences of means between scenarios
  (action effects) stay what the model estimated, while the intervals widen (lambda > 1) or narrow.

A forecaster whose paths are too narrow around a scattered centre under-covers; the temperature can
fix coverage only by flattening the cell distributions, which also pulls cell means toward the
middle of the bins (on the synthetic building, T > 1 shrank the estimated action effects; see
benchmarks/README.md). The spread factor widens without moving the centre.
"""

from __future__ import annotations

import numpy as np

#: lambda values tried by :func:`fit_spread` (scoring is cheap: one set of samples is reused).
SPREAD_GRID = tuple(np.round(np.arange(0.5, 3.0001, 0.05), 2))


def fair_crps(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unbiased ensemble CRPS per cell: samples [N, S, H, C], y [N, H, C] -> [N, H, C]."""
    x = np.sort(samples, axis=1)
    S = x.shape[1]
    abs_err = np.abs(x - y[:, None]).mean(1)
    w = (2.0 * np.arange(1, S + 1) - S - 1.0).reshape(1, S, 1, 1)
    return abs_err - (x * w).sum(1) / (S * (S - 1))


def mean_fair_crps(samples: np.ndarray, y: np.ndarray, observed: np.ndarray | None = None) -> float:
    """Mean :func:`fair_crps` over the observed cells (bool [N, H, C]; None: every cell)."""
    crps = fair_crps(samples, y)
    if observed is None:
        return float(crps.mean())
    obs = observed.astype(bool)
    return float((crps * obs).sum() / max(obs.sum(), 1))


def grid_search(
    score, grid, *, factor: float = 1.25, max_extend: int = 3
) -> tuple[float, dict[float, float]]:
    """Minimise ``score(value)`` over a sorted grid, extending it while the best is at an edge.

    When the minimum sits on the grid's largest (smallest) value, values ``factor`` times larger
    (smaller) are tried, at most ``max_extend`` times per side, so a grid that was too narrow for
    a model does not silently pin the answer to its edge. Returns (best value, {value: score}).
    """
    scores = {float(v): score(float(v)) for v in grid}
    for _ in range(max_extend):
        vals = sorted(scores)
        best = min(vals, key=scores.get)
        if best == vals[-1]:
            new = round(vals[-1] * factor, 4)
        elif best == vals[0]:
            new = round(vals[0] / factor, 4)
        else:
            break
        scores[new] = score(new)
    return min(scores, key=scores.get), dict(sorted(scores.items()))


def widen(samples: np.ndarray, spread: float, axis: int = 1) -> np.ndarray:
    """Centre-preserving dispersion: ``m + spread * (samples - m)``, m the mean over ``axis``.

    samples: any shape with the paths on ``axis`` (e.g. [N, S, H, C] with axis 1, or a rollout's
    [A, S, horizon, C] with axis 1: each plan around its own mean). Returns the same shape; with
    ``spread == 1`` the input itself (no copy).
    """
    if spread == 1.0:
        return samples
    if not np.isfinite(spread) or spread <= 0:
        raise ValueError(f"spread: expected a positive number, got {spread!r}")
    m = samples.mean(axis=axis, keepdims=True)
    return (m + spread * (samples - m)).astype(samples.dtype, copy=False)


def fit_spread(
    z: np.ndarray, y: np.ndarray, observed: np.ndarray | None = None, grid=SPREAD_GRID
) -> tuple[float, dict[float, float]]:
    """The spread factor minimising the mean fair CRPS of ``widen(z, lambda)`` against ``y``.

    z: [N, S, H, C] validation paths (scaled so every channel counts alike); y: [N, H, C];
    observed: bool [N, H, C] (missing targets are left out). Returns (best, {lambda: CRPS}).
    """
    if z.shape[1] < 2:
        raise ValueError(f"fit_spread: needs at least 2 paths per window, got {z.shape[1]}")
    return grid_search(lambda lam: mean_fair_crps(widen(z, lam), y, observed), grid)


__all__ = ["SPREAD_GRID", "fair_crps", "fit_spread", "grid_search", "mean_fair_crps", "widen"]
