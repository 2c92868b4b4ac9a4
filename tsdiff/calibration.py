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

import time
from collections.abc import Callable

import numpy as np
import torch

from tsdiff.encoding import standardize
from tsdiff.model import batch_target_scale

#: lambda values tried by :func:`fit_spread` (scoring is cheap: one set of samples is reused).
SPREAD_GRID = tuple(np.round(np.arange(0.5, 3.0001, 0.05), 2))
#: temperatures tried by :func:`calibrate`: softmax temperatures (masked mode) and initial-noise
#: scales (flow mode, whose few-step ODE tends to be too sharp)
TEMPERATURE_GRID = {
    "masked": (0.5, 0.6, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5),
    "flow": (0.8, 1.0, 1.25, 1.6, 2.0, 2.5, 3.0, 4.0),
}


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


def _late(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def grid_search(
    score, grid, *, factor: float = 1.25, max_extend: int = 3, deadline: float | None = None
) -> tuple[float, dict[float, float]]:
    """Minimise ``score(value)`` over a sorted grid, extending it while the best is at an edge.

    When the minimum sits on the grid's largest (smallest) value, values ``factor`` times larger
    (smaller) are tried, at most ``max_extend`` times per side, so a grid that was too narrow for
    a model does not silently pin the answer to its edge. Returns (best value, {value: score}).

    ``deadline`` (a ``time.monotonic()`` value): the grid is scored nearest 1 first (1, then
    its neighbours outwards) and no further value is scored once it has passed; the first value
    always is.
    """
    scores: dict[float, float] = {}
    for v in sorted(grid, key=lambda v: (abs(np.log(v)), v)) if deadline else grid:
        if scores and _late(deadline):
            return min(scores, key=scores.get), dict(sorted(scores.items()))
        scores[float(v)] = score(float(v))
    for _ in range(max_extend):
        if _late(deadline):
            break
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


def widen(
    samples: np.ndarray,
    spread: float,
    axis: int = 1,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Centre-preserving dispersion: ``m + spread * (samples - m)``, m the mean over ``axis``.

    samples: any shape with the paths on ``axis`` (e.g. [N, S, H, C] with axis 1, or a rollout's
    [A, S, horizon, C] with axis 1: each plan around its own mean). Returns the same shape; with
    ``spread == 1`` the input itself (no copy).

    bounds: (lower, upper) broadcastable to ``samples`` (e.g. [C]; -inf / inf: unbounded), the
    domain (:mod:`tsdiff.encoding`): a value on a bound stays there (exact zeros stay zeros,
    also when ``spread < 1``) and a value widened beyond a bound lands on it (censoring), so no
    path leaves the domain; the mean then moves where the domain cuts the widened paths.
    """
    if spread == 1.0:
        return samples
    if not np.isfinite(spread) or spread <= 0:
        raise ValueError(f"spread: expected a positive number, got {spread!r}")
    m = samples.mean(axis=axis, keepdims=True)
    out = m + spread * (samples - m)
    if bounds is not None:
        lo, hi = bounds
        out = np.where(samples <= lo, lo, np.where(samples >= hi, hi, np.clip(out, lo, hi)))
    return out.astype(samples.dtype, copy=False)


def fit_spread(
    z: np.ndarray, y: np.ndarray, observed: np.ndarray | None = None, grid=SPREAD_GRID, bounds=None
) -> tuple[float, dict[float, float]]:
    """The spread factor minimising the mean fair CRPS of ``widen(z, lambda, bounds=bounds)``
    against ``y``.

    z: [N, S, H, C] validation paths (scaled so every channel counts alike); y: [N, H, C];
    observed: bool [N, H, C] (missing targets are left out); bounds: the domain in z's units
    (broadcastable, e.g. [N, 1, 1, C]) or None. Returns (best, {lambda: CRPS}).
    """
    if z.shape[1] < 2:
        raise ValueError(f"fit_spread: needs at least 2 paths per window, got {z.shape[1]}")
    return grid_search(lambda lam: mean_fair_crps(widen(z, lam, bounds=bounds), y, observed), grid)


__all__ = ["SPREAD_GRID", "fair_crps", "fit_spread", "grid_search", "mean_fair_crps", "widen"]


def calibrate(
    what: str,
    batch: dict,
    paths: Callable[[float, int], torch.Tensor],
    *,
    mode: str = "masked",
    grid=None,
    n_samples: int = 16,
    spread_samples: int = 64,
    deadline: float | None = None,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float, dict]:
    """Fit the temperature and/or the spread (``what``: temperature, spread or both).

    CRPS is taken on context-scaled values so every channel counts alike, with the unbiased
    ("fair") ensemble estimator so the small ensemble does not favour sharp forecasts.
    Temperature: every grid value sees the same random numbers (``paths`` reseeds); the grid
    is ``TEMPERATURE_GRID[mode]`` unless given. Spread: one set of ``spread_samples`` paths at the
    fitted temperature is widened or narrowed around its mean (:func:`fit_spread`).

    ``deadline`` (a ``time.monotonic()`` value): calibration stops there: the temperature grid
    is cut short (:func:`grid_search`), and the spread is not fitted (left 1) once it has
    passed.

    Args:
        batch: the validation windows (collated, windows.py shapes), on the sampler's device.
        paths: ``paths(temperature, S)`` -> sample paths [N, S, H, C] in data units.
        bounds: the domain, (lower, upper) [C] in data units (-inf / inf: none), which the
            widened paths keep (:func:`widen`); None: unbounded.

    Returns:
        (temperature, spread, history entries: ``calibration`` and/or ``spread_calibration``,
        the score of every grid value).
    """
    loc, scale = batch_target_scale(batch)  # float64; scale 0: a degenerate (constant) context
    y = standardize(batch["fut"], loc, scale).cpu().numpy()
    obs = (batch["fut_obs"] & (scale > 0)).cpu().numpy()  # degenerate paths are exact

    def scaled(temp: float, n: int) -> np.ndarray:
        return standardize(paths(temp, n), loc[:, None], scale[:, None]).cpu().numpy()

    temperature, spread, history = 1.0, 1.0, {}
    if what in ("temperature", "both"):

        def score(temp: float) -> float:
            return mean_fair_crps(scaled(temp, n_samples), y, obs)

        temperature, scores = grid_search(
            score, TEMPERATURE_GRID[mode] if grid is None else grid, deadline=deadline
        )
        history["calibration"] = {str(t): round(v, 5) for t, v in scores.items()}
    if what in ("spread", "both") and not _late(deadline):
        zb = None if bounds is None else z_bounds(bounds, loc, scale)
        spread, scores = fit_spread(scaled(temperature, spread_samples), y, obs, bounds=zb)
        history["spread_calibration"] = {str(k): round(v, 5) for k, v in scores.items()}
    return temperature, spread, history


def z_bounds(bounds, loc: torch.Tensor, scale: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Domain bounds (lower, upper) [C] in data units -> [N, 1, 1, C] in the z units of windows
    with loc, scale [N, 1, C] (computed as :func:`tsdiff.encoding.standardize` computes a path's
    z, so a path value on a bound has exactly the bound's z); degenerate windows: unbounded."""
    lc, sc = loc.cpu().numpy(), scale.cpu().numpy()
    ok, safe = sc > 0, np.where(sc > 0, sc, 1.0)
    lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds)
    z_lo = np.where(ok, (lo - lc) / safe, -np.inf)
    return z_lo[:, None], np.where(ok, (hi - lc) / safe, np.inf)[:, None]
