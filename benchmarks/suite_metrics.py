"""Scores and aggregates of the suite (:mod:`benchmarks.suite`): one forecast -> one dict of
metrics, and the per-set rows of many models -> their aggregate rows.

A forecast is either sample paths ``[N, S, H, C]`` (tsdiff, DeepAR, PatchTST, seasonal naive) or
quantiles ``[Q, N, H, C]`` at given levels (statsforecast, fracast). Quantile-based metrics (wQL,
MASE of the median, coverage, calibration error) are taken on quantiles: a sample forecast's by
the gluonts estimator, a quantile forecast's own, linearly interpolated to the levels
:data:`LEVELS` inside its grid and left out (NaN) outside it. Sample-based metrics (CRPS, CRPS of
the horizon sum, energy score, share outside the domain) need paths: a quantile forecast gets
:func:`quantile_paths`. Missing targets (NaN) are left out of every metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tsdiff import metrics as M

LEVELS: tuple[float, ...] = M.CALIBRATION_QUANTILES  # 0.05 ... 0.95: holds every level used
WQL_LEVELS = M.DEFAULT_QUANTILES
N_PATHS = 100
METRICS = ("wql", "mase", "crps", "cov50", "cov90", "calibration_error", "crps_sum",
           "energy_score", "outside_domain")  # fmt: skip


@dataclass
class Forecast:
    """One model's forecast of every window of a set (window order of ``window_splits``).

    samples: ``[N, S, H, C]`` or None; quantiles: ``[Q, N, H, C]`` at ``levels`` or None.
    fit_s / predict_s: wall-clock seconds of training and of forecasting all windows.
    """

    samples: np.ndarray | None = None
    quantiles: np.ndarray | None = None
    levels: tuple[float, ...] = ()
    fit_s: float = 0.0
    predict_s: float = 0.0


def interpolate_levels(q: np.ndarray, levels: Sequence[float], to=LEVELS) -> np.ndarray:
    """``q`` ``[Q, ...]`` at sorted ``levels`` -> ``[len(to), ...]``: linear in the level inside
    ``[levels[0], levels[-1]]``, NaN outside (a model's quantile grid is not extrapolated)."""
    lv = np.asarray(levels, dtype=np.float64)
    q = np.sort(np.asarray(q, dtype=np.float64), axis=0)  # crossing quantiles made monotone
    out = np.full((len(to), *q.shape[1:]), np.nan)
    for i, t in enumerate(np.round(np.asarray(to, dtype=np.float64), 10)):
        if t < lv[0] - 1e-9 or t > lv[-1] + 1e-9:
            continue
        j = int(np.clip(np.searchsorted(lv, t), 1, len(lv) - 1))
        w = 0.0 if lv[j] == lv[j - 1] else (t - lv[j - 1]) / (lv[j] - lv[j - 1])
        out[i] = (1 - w) * q[j - 1] + w * q[j]
    return out


def quantile_paths(
    q: np.ndarray, levels: Sequence[float], n_paths: int = N_PATHS, seed: int = 0
) -> np.ndarray:
    """Sample paths from quantile forecasts ``[Q, N, H, C]`` -> ``[N, S, H, C]``.

    Path ``s`` of a (window, channel) evaluates the piecewise-linear quantile function at one
    level ``u`` for every step of the horizon (so each path is coherent over time, the most
    coherent reading of marginal quantiles); the levels are the stratified ``(i + 0.5) / S``,
    shuffled independently per (window, channel), so channels are independent. Beyond the
    outermost levels the edge segment's slope is extended.
    """
    lv = np.asarray(levels, dtype=np.float64)
    q = np.sort(np.asarray(q, dtype=np.float64), axis=0)
    _, n, h, c = q.shape
    rng = np.random.default_rng(seed)
    u = (np.arange(n_paths) + 0.5) / n_paths
    u = np.stack([rng.permutation(u) for _ in range(n * c)]).reshape(n, c, n_paths)
    j = np.clip(np.searchsorted(lv, u), 1, len(lv) - 1)  # [N, C, S]
    w = (u - lv[j - 1]) / (lv[j] - lv[j - 1])
    qt = q.transpose(1, 3, 0, 2)  # [N, C, Q, H]
    lo = np.take_along_axis(qt, (j - 1)[..., None], axis=2)  # [N, C, S, H]
    hi = np.take_along_axis(qt, j[..., None], axis=2)
    paths = lo + w[..., None] * (hi - lo)
    return paths.transpose(0, 2, 3, 1)  # [N, S, H, C]


def _seasonal_scale(history: np.ndarray, season: int) -> np.ndarray:
    """Mean absolute seasonal difference per channel of ``history`` ``[T, C]`` (NaN ignored)."""
    d = np.abs(history[season:] - history[:-season])
    if d.size == 0 or np.isnan(d).all(0).any():
        return np.full(history.shape[1], np.nan)
    return np.nanmean(d, axis=0)


def score(
    fc: Forecast,
    y: np.ndarray,
    histories: Sequence[np.ndarray],
    season: int,
    lower: np.ndarray,
) -> dict:
    """Every metric of one forecast.

    Args:
        fc: the forecast of ``N`` windows.
        y: ``[N, H, C]`` targets, NaN where missing.
        histories: per window the item's targets before the origin ``[T_n, C]`` (MASE scale:
            seasonal-naive in-sample MAE at lag ``season``; a (window, channel) whose scale is 0 or
            undefined is left out of the MASE).
        lower: ``[C]`` domain lower bounds (:func:`tsdiff.metrics.domain_lower_bounds`).
    Returns:
        ``METRICS`` as floats (energy score only when ``C > 1``, else NaN).
    """
    y = np.asarray(y, dtype=np.float64)
    n, h, c = y.shape
    if fc.samples is not None:
        x = np.asarray(fc.samples, dtype=np.float64)
        q = M.sample_quantiles(x, LEVELS, axis=1)  # [Q, N, H, C]
    else:
        q = interpolate_levels(fc.quantiles, fc.levels)
        x = quantile_paths(fc.quantiles, fc.levels)
    ok = ~np.isnan(y)
    lv = np.round(np.asarray(LEVELS), 10)

    def at(level: float) -> np.ndarray:
        return q[int(np.argmin(np.abs(lv - level)))]

    out = {
        "wql": M.weighted_quantile_loss(None, y, WQL_LEVELS, np.stack([at(v) for v in WQL_LEVELS]))
    }
    med = at(0.5)
    err = np.nanmean(np.where(ok, np.abs(y - med), np.nan), axis=1)  # [N, C]
    scale = np.stack(
        [_seasonal_scale(np.asarray(hh, dtype=np.float64), season) for hh in histories]
    )
    good = np.isfinite(err) & np.isfinite(scale) & (scale > 0)
    out["mase"] = float((err[good] / scale[good]).mean()) if good.any() else math.nan
    fx, fy = x.transpose(0, 3, 1, 2), y.transpose(0, 2, 1)  # [N, C, S, H], [N, C, H]
    out["crps"] = M.normalised_crps(fx, fy)
    for level in (0.5, 0.9):
        lo, hi = at((1 - level) / 2), at((1 + level) / 2)
        inside = ((y >= lo) & (y <= hi))[ok]
        usable = np.isfinite(lo[ok])
        out[f"cov{round(level * 100)}"] = float(inside[usable].mean()) if usable.any() else math.nan
    shares = [
        abs(float((y[ok] <= q[i][ok]).mean()) - lv[i])
        for i in range(len(lv))
        if np.isfinite(q[i][ok]).all()
    ]
    out["calibration_error"] = float(np.mean(shares)) if shares else math.nan
    out["crps_sum"] = M.crps_horizon_sum(fx, fy)
    out["energy_score"] = math.nan
    if c > 1:
        jx, jy = x.reshape(n, x.shape[1], h * c), y.reshape(n, h * c)
        full = ~np.isnan(jy).any(-1)
        if full.any():
            out["energy_score"] = float(M.energy_score(jx[full], jy[full]).mean())
    out["outside_domain"] = M.share_below(x, lower)
    return out


# ---------------------------------------------------------------------------------- aggregates
def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def geometric_mean_relative(
    rows: Sequence[dict], metric: str, baseline: str = "seasonal_naive"
) -> dict[str, tuple[float, int]]:
    """Per model: geometric mean over sets of ``metric / baseline's metric`` and the number of
    sets it was taken over (sets where both are finite and positive). ``rows``: per-set rows with
    ``set``, ``model`` and ``metric``."""
    base = {r["set"]: _num(r.get(metric)) for r in rows if r["model"] == baseline}
    logs: dict[str, list[float]] = {}
    for r in rows:
        b, v = base.get(r["set"], math.nan), _num(r.get(metric))
        if math.isfinite(b) and math.isfinite(v) and b > 0 and v > 0:
            logs.setdefault(r["model"], []).append(math.log(v / b))
    return {m: (math.exp(sum(ls) / len(ls)), len(ls)) for m, ls in logs.items()}


def average_ranks(rows: Sequence[dict], metric: str = "wql") -> dict[str, float]:
    """Per model: its rank by ``metric`` (1 = lowest; ties share the mean rank) among the models
    with a finite value on a set, averaged over the sets it has a value on."""
    by_set: dict[str, list[tuple[float, str]]] = {}
    for r in rows:
        v = _num(r.get(metric))
        if math.isfinite(v):
            by_set.setdefault(r["set"], []).append((v, r["model"]))
    ranks: dict[str, list[float]] = {}
    for entries in by_set.values():
        vals = np.array([v for v, _ in entries])
        for v, model in entries:
            rank = (vals < v).sum() + 1 + ((vals == v).sum() - 1) / 2
            ranks.setdefault(model, []).append(float(rank))
    return {m: float(np.mean(rs)) for m, rs in ranks.items()}


def wins(rows: Sequence[dict], model: str, metric: str = "wql") -> dict[str, tuple[int, int]]:
    """Per other model: (sets where ``model`` has the lower ``metric``, sets both have)."""
    mine = {r["set"]: _num(r.get(metric)) for r in rows if r["model"] == model}
    out: dict[str, list[int]] = {}
    for r in rows:
        if r["model"] == model:
            continue
        a, b = mine.get(r["set"], math.nan), _num(r.get(metric))
        if math.isfinite(a) and math.isfinite(b):
            w = out.setdefault(r["model"], [0, 0])
            w[0] += int(a < b)
            w[1] += 1
    return {m: (w[0], w[1]) for m, w in out.items()}
