"""Probabilistic forecast scores from sample paths (numpy in, floats out).

Shape conventions (``S`` = number of sample paths, ``H`` = horizon, ``C`` = channels):

- ``samples``: ``[..., S, H]`` with targets ``y``: ``[..., H]`` (the sample axis is ``-2``), or the
  full layout ``[N, S, H, C]`` with ``y``: ``[N, H, C]`` (the sample axis is ``1``). Functions that
  take an ``axis`` argument default to ``-2`` for ``[..., S, H]``; :func:`evaluate_samples` takes
  the 4-d layout and moves axes itself.
- NaN targets are ignored by every aggregate score (their cells drop out of sums and counts).

Quantile estimator: :func:`sample_quantiles` with ``method="gluonts"`` (the default used for the
wQL, coverage and calibration) returns the order statistic at index ``round((S - 1) * q)`` of the
sorted samples (numpy's round-half-to-even), exactly as ``gluonts.model.forecast.SampleForecast
.quantile`` does, so wQL numbers are comparable with GluonTS / Chronos / GIFT-Eval tables.
``method="linear"`` gives ``np.quantile``'s default interpolation instead.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CALIBRATION_QUANTILES: tuple[float, ...] = tuple(np.round(np.arange(1, 20) * 0.05, 2))
COVERAGE_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)


def crps_from_samples(samples: np.ndarray, y: np.ndarray, axis: int = -2) -> np.ndarray:
    """Exact sample CRPS per element, ``E|X - y| - 0.5 E|X - X'|`` over the empirical ensemble.

    The pairwise term uses the sorted-sample identity ``sum_{i,j} |x_i - x_j| = 2 sum_i (2i - S - 1)
    x_(i)`` (1-based ranks), so the cost is O(S log S). Equal to ``properscoring.crps_ensemble``.

    Args:
        samples: ``[..., S, H]`` (sample axis ``axis``).
        y: the targets, ``samples`` without the sample axis, e.g. ``[..., H]``.
    Returns:
        CRPS per target element, shape of ``y`` (NaN where ``y`` is NaN).
    """
    x = np.moveaxis(np.asarray(samples, dtype=np.float64), axis, -1)  # [..., H, S]
    y = np.asarray(y, dtype=np.float64)
    s = x.shape[-1]
    abs_err = np.abs(x - y[..., None]).mean(-1)
    xs = np.sort(x, axis=-1)
    weights = 2.0 * np.arange(1, s + 1) - s - 1.0
    spread = (xs * weights).sum(-1) / (s * s)  # = 0.5 E|X - X'|
    return abs_err - spread


def normalised_crps(samples: np.ndarray, y: np.ndarray, axis: int = -2) -> float:
    """Sum of CRPS over all (non-NaN) target cells divided by the sum of ``|y|``.

    Shapes as in :func:`crps_from_samples`.
    """
    crps = crps_from_samples(samples, y, axis)
    ok = ~np.isnan(np.asarray(y, dtype=np.float64))
    return float(crps[ok].sum() / np.abs(np.asarray(y)[ok]).sum())


def crps_horizon_sum(samples: np.ndarray, y: np.ndarray, axis: int = -2) -> float:
    """Normalised CRPS of each path's sum over the horizon: sum of CRPS / sum of ``|y sum|``.

    ``samples``: ``[..., S, H]`` (sample axis ``axis``); ``y``: ``[..., H]``. Steps whose target
    is NaN are left out of both sums; a series with no observed step is skipped. Paths that are
    incoherent over time (steps drawn independently) give a too narrow sum and score worse.
    """
    x = np.moveaxis(np.asarray(samples, dtype=np.float64), axis, -2)  # [..., S, H]
    y = np.asarray(y, dtype=np.float64)
    ok = ~np.isnan(y)
    x_sum = np.where(ok[..., None, :], x, 0.0).sum(-1)[..., None]  # [..., S, 1]
    y_sum = np.where(ok, y, 0.0).sum(-1)[..., None]  # [..., 1]
    keep = ok.any(-1)
    crps = crps_from_samples(x_sum, y_sum)[..., 0]
    return float(crps[keep].sum() / np.abs(y_sum[..., 0][keep]).sum())


def domain_lower_bounds(train: np.ndarray) -> np.ndarray:
    """Per channel of ``train`` ``[T, C]``: 0 when all its non-NaN values are >= 0, else -inf."""
    t = np.asarray(train, dtype=np.float64)
    return np.where((np.nan_to_num(t, nan=0.0) >= 0).all(0), 0.0, -np.inf)


def share_below(samples: np.ndarray, lower: np.ndarray) -> float:
    """Share of sample values below their channel's bound: ``samples`` ``[..., C]``, ``lower``
    ``[C]`` (from :func:`domain_lower_bounds`)."""
    return float((np.asarray(samples) < np.asarray(lower, dtype=np.float64)).mean())


def sample_quantiles(
    samples: np.ndarray, quantiles, axis: int = -2, method: str = "gluonts"
) -> np.ndarray:
    """Quantiles of the sample paths along ``axis``.

    Args:
        samples: ``[..., S, H]``.
        quantiles: levels in (0, 1), length ``Q``.
        method: ``"gluonts"`` (order statistic ``round((S-1) q)``, as ``SampleForecast.quantile``)
            or ``"linear"`` (``np.quantile`` default).
    Returns:
        ``[Q, ..., H]``: the sample axis replaced by a leading quantile axis.
    """
    qs = np.round(np.asarray(quantiles, dtype=np.float64), 10)  # 0.05 - eps -> 0.05
    if method == "linear":
        return np.quantile(samples, qs, axis=axis)
    if method != "gluonts":
        raise ValueError(f"unknown quantile method {method!r}")
    xs = np.sort(np.asarray(samples, dtype=np.float64), axis=axis)
    s = xs.shape[axis]
    idx = np.round((s - 1) * qs).astype(int)
    return np.moveaxis(np.take(xs, idx, axis=axis), axis, 0)


def quantile_loss(q_pred: np.ndarray, y: np.ndarray, q: float) -> np.ndarray:
    """Elementwise GluonTS quantile loss ``2 |(y - q_pred) (1{y <= q_pred} - q)|``; shapes equal."""
    return 2.0 * np.abs((y - q_pred) * ((y <= q_pred).astype(np.float64) - q))


def weighted_quantile_loss(
    samples: np.ndarray | None,
    y: np.ndarray,
    quantiles=DEFAULT_QUANTILES,
    quantile_forecasts: np.ndarray | None = None,
    axis: int = -2,
) -> float:
    """GluonTS ``mean_weighted_sum_quantile_loss``: mean over q of ``sum QL_q / sum |y|``.

    Args:
        samples: ``[..., S, H]`` sample paths (quantiles by the gluonts estimator), or ``None``
            when ``quantile_forecasts`` is given.
        y: ``[..., H]`` targets; NaN cells are ignored.
        quantiles: the grid, default 0.1 ... 0.9.
        quantile_forecasts: ``[Q, ..., H]`` precomputed quantiles, aligned with ``quantiles``.
    """
    y = np.asarray(y, dtype=np.float64)
    qf = (
        sample_quantiles(samples, quantiles, axis)
        if quantile_forecasts is None
        else np.asarray(quantile_forecasts, dtype=np.float64)
    )
    ok = ~np.isnan(y)
    denom = np.abs(y[ok]).sum()
    losses = [quantile_loss(qf[i][ok], y[ok], q).sum() / denom for i, q in enumerate(quantiles)]
    return float(np.mean(losses))


def energy_score(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Energy score (beta = 1), standard (V-statistic) estimator, per batch element.

    ``ES = mean_i ||X_i - y|| - 1 / (2 S^2) sum_{i,j} ||X_i - X_j||``: the same estimator as the
    sample CRPS, so with ``D = 1`` it equals :func:`crps_from_samples`.

    Args:
        samples: ``[..., S, D]`` joint draws of a ``D``-dimensional vector.
        y: ``[..., D]``.
    Returns:
        ``[...]`` energy scores. O(S^2 D) per element.
    """
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    lead = y.shape[:-1]
    xf = x.reshape(-1, *x.shape[-2:])
    yf = y.reshape(-1, y.shape[-1])
    out = np.empty(len(yf))
    for i in range(len(yf)):  # one element at a time keeps the [S, S, D] difference small
        term1 = np.linalg.norm(xf[i] - yf[i], axis=-1).mean()
        term2 = np.linalg.norm(xf[i][:, None] - xf[i][None], axis=-1).mean()
        out[i] = term1 - 0.5 * term2
    return out.reshape(lead)


def variogram_score(samples: np.ndarray, y: np.ndarray, p: float = 0.5) -> np.ndarray:
    """Variogram score of order ``p`` with unit weights, per batch element.

    ``VS = sum_{i,j} (|y_i - y_j|^p - E|X_i - X_j|^p)^2``.

    Args:
        samples: ``[..., S, D]``; y: ``[..., D]``. Returns ``[...]``.
    """
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    lead = y.shape[:-1]
    xf = x.reshape(-1, *x.shape[-2:])
    yf = y.reshape(-1, y.shape[-1])
    out = np.empty(len(yf))
    for i in range(len(yf)):
        vy = np.abs(yf[i][:, None] - yf[i][None]) ** p  # [D, D]
        vx = (np.abs(xf[i][:, :, None] - xf[i][:, None, :]) ** p).mean(0)
        out[i] = ((vy - vx) ** 2).sum()
    return out.reshape(lead)


def coverage(samples: np.ndarray, y: np.ndarray, level: float, axis: int = -2) -> float:
    """Share of (non-NaN) targets inside the central ``level`` interval of the samples.

    The interval is ``[q_{(1-level)/2}, q_{(1+level)/2}]`` by the gluonts estimator, bounds included.
    Shapes as in :func:`crps_from_samples`.
    """
    lo, hi = sample_quantiles(samples, [(1 - level) / 2, (1 + level) / 2], axis)
    y = np.asarray(y, dtype=np.float64)
    ok = ~np.isnan(y)
    return float(((y >= lo) & (y <= hi))[ok].mean())


def calibration_error(
    samples: np.ndarray, y: np.ndarray, quantiles=CALIBRATION_QUANTILES, axis: int = -2
) -> float:
    """Mean over ``q`` (default 0.05 ... 0.95) of ``|share of y <= q-quantile - q|``."""
    qf = sample_quantiles(samples, quantiles, axis)
    y = np.asarray(y, dtype=np.float64)
    ok = ~np.isnan(y)
    shares = [(y[ok] <= qf[i][ok]).mean() for i in range(len(quantiles))]
    return float(np.mean(np.abs(np.asarray(shares) - np.asarray(quantiles))))


def pit_values(
    samples: np.ndarray, y: np.ndarray, rng: np.random.Generator | None = None, axis: int = -2
) -> np.ndarray:
    """Randomised probability integral transform per target cell.

    ``PIT = (#{X < y} + U * (#{X == y} + 1)) / (S + 1)`` with ``U ~ Uniform(0, 1)``: uniform on
    (0, 1) for a calibrated forecast even with ties (e.g. zero-inflated series or point forecasts).

    Returns:
        Shape of ``y``, NaN where ``y`` is NaN.
    """
    rng = np.random.default_rng() if rng is None else rng
    x = np.moveaxis(np.asarray(samples, dtype=np.float64), axis, -1)
    y = np.asarray(y, dtype=np.float64)
    below = (x < y[..., None]).sum(-1)
    ties = (x == y[..., None]).sum(-1)
    pit = (below + rng.uniform(size=y.shape) * (ties + 1)) / (x.shape[-1] + 1)
    return np.where(np.isnan(y), np.nan, pit)


def _seasonal_scale(insample: list | np.ndarray, season: int) -> np.ndarray:
    """Mean absolute seasonal difference of each in-sample series -> ``[N, ...]``."""
    out = []
    for series in insample:
        z = np.asarray(series, dtype=np.float64)
        d = np.abs(z[season:] - z[:-season])
        out.append(np.nanmean(d, axis=0))
    return np.asarray(out)


def mase(samples: np.ndarray, y: np.ndarray, insample, season: int = 1, axis: int = -2) -> float:
    """MASE of the sample median: mean over series of ``mean |y - median| / scale``.

    Args:
        samples: ``[N, S, H]`` (or ``[N, S, H, C]`` with ``axis=1``); y: ``[N, H(, C)]``.
        insample: length-``N`` list of histories ``[T_n]`` (or ``[T_n, C]``); the scale is the
            mean absolute seasonal difference at lag ``season`` (per channel).
    """
    med = sample_quantiles(samples, [0.5], axis)[0]
    err = np.nanmean(np.abs(np.asarray(y, dtype=np.float64) - med), axis=1)  # [N(, C)]
    return float(np.nanmean(err / _seasonal_scale(insample, season)))


def msis(
    samples: np.ndarray,
    y: np.ndarray,
    insample,
    season: int = 1,
    alpha: float = 0.05,
    axis: int = -2,
) -> float:
    """M4 mean scaled interval score of the central ``1 - alpha`` interval.

    Per series: ``mean_h [(u - l) + 2/alpha (l - y) 1{y < l} + 2/alpha (y - u) 1{y > u}] / scale``
    with the seasonal-naive in-sample scale; averaged over series. Shapes as in :func:`mase`.
    """
    lo, hi = sample_quantiles(samples, [alpha / 2, 1 - alpha / 2], axis)
    y = np.asarray(y, dtype=np.float64)
    score = (hi - lo) + 2 / alpha * ((lo - y) * (y < lo) + (y - hi) * (y > hi))
    return float(np.nanmean(np.nanmean(score, axis=1) / _seasonal_scale(insample, season)))


def nd(samples: np.ndarray, y: np.ndarray, axis: int = -2) -> float:
    """Normalised deviation of the sample median: ``sum |y - median| / sum |y|``."""
    med = sample_quantiles(samples, [0.5], axis)[0]
    y = np.asarray(y, dtype=np.float64)
    ok = ~np.isnan(y)
    return float(np.abs(y - med)[ok].sum() / np.abs(y[ok]).sum())


def evaluate_samples(
    samples: np.ndarray,
    y: np.ndarray,
    insample=None,
    season: int | None = None,
    pit_rng: np.random.Generator | None = None,
) -> dict:
    """Every score in one dict.

    Args:
        samples: ``[N, S, H, C]`` (``[N, S, H]`` is read as ``C = 1``).
        y: ``[N, H, C]`` (or ``[N, H]``).
        insample: optional length-``N`` list of histories ``[T_n, C]`` (or ``[T_n]``) for MASE and
            MSIS; ``season`` defaults to 1.
    Returns:
        ``crps`` (normalised), ``crps_sum`` (normalised CRPS of the channel sum), ``wql``, ``nd``,
        ``cov50/80/90/95``, ``calibration_error``, ``energy_score`` and ``variogram_score``, plus
        ``mase`` / ``msis`` when ``insample`` is given and ``pit`` (flat array of PIT values).
        Energy and variogram scores are taken on the joint of the whole path: one vector of
        ``D = H * C`` values per window (``C = 1``: the path over the horizon), averaged over windows
        with complete targets.
    """
    x = np.asarray(samples, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    if x.ndim == 3:
        x, yy = x[..., None], yy[..., None]
    n, s, h, c = x.shape
    flat_x = x.transpose(0, 3, 1, 2)  # [N, C, S, H]
    flat_y = yy.transpose(0, 2, 1)  # [N, C, H]
    out = {
        "crps": normalised_crps(flat_x, flat_y),
        "crps_sum": normalised_crps(x.sum(-1), yy.sum(-1)),
        "wql": weighted_quantile_loss(flat_x, flat_y),
        "nd": nd(flat_x, flat_y),
        "calibration_error": calibration_error(flat_x, flat_y),
    }
    for level in COVERAGE_LEVELS:
        out[f"cov{round(level * 100)}"] = coverage(flat_x, flat_y, level)
    joint_x = x.reshape(n, s, h * c)
    joint_y = yy.reshape(n, h * c)
    ok = ~np.isnan(joint_y).any(-1)
    out["energy_score"] = float(energy_score(joint_x[ok], joint_y[ok]).mean())
    out["variogram_score"] = float(variogram_score(joint_x[ok], joint_y[ok]).mean())
    if insample is not None:
        season = 1 if season is None else season
        hist = [np.asarray(z, dtype=np.float64).reshape(len(z), -1) for z in insample]
        out["mase"] = mase(x, yy, hist, season, axis=1)
        out["msis"] = msis(x, yy, hist, season, axis=1)
    out["pit"] = pit_values(flat_x, flat_y, pit_rng)[~np.isnan(flat_y)]
    return out


class CRPSMetric(Metric):
    """Normalised CRPS (sum CRPS / sum |y|) accumulated over batches; DDP-safe (sum reduction).

    ``update(samples [B, S, H(, C)], y [B, H(, C)])`` with the sample axis at 1; NaN targets are
    ignored. ``compute()`` returns a scalar tensor.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state(
            "crps_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "abs_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, samples: torch.Tensor, y: torch.Tensor) -> None:
        x = samples.detach().to(torch.float64)
        t = y.detach().to(torch.float64)
        s = x.shape[1]
        abs_err = (x - t.unsqueeze(1)).abs().mean(1)
        xs = torch.sort(x, dim=1).values
        w = 2.0 * torch.arange(1, s + 1, dtype=torch.float64, device=x.device) - s - 1.0
        w = w.view(1, s, *([1] * (x.ndim - 2)))
        crps = abs_err - (xs * w).sum(1) / (s * s)
        ok = ~torch.isnan(t)
        self.crps_sum += crps[ok].sum()
        self.abs_sum += t[ok].abs().sum()

    def compute(self) -> torch.Tensor:
        return self.crps_sum / self.abs_sum


class CoverageMetric(Metric):
    """Coverage of the central ``level`` interval (gluonts quantile estimator), DDP-safe.

    ``update(samples [B, S, H(, C)], y [B, H(, C)])``; NaN targets are ignored.
    """

    full_state_update = False

    def __init__(self, level: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.level = level
        self.add_state("hits", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, samples: torch.Tensor, y: torch.Tensor) -> None:
        x = torch.sort(samples.detach().to(torch.float64), dim=1).values
        t = y.detach().to(torch.float64)
        s = x.shape[1]
        qs = np.round([(1 - self.level) / 2, (1 + self.level) / 2], 10)
        lo_i, hi_i = (int(i) for i in np.round((s - 1) * qs))
        lo, hi = x[:, lo_i], x[:, hi_i]
        ok = ~torch.isnan(t)
        self.hits += ((t >= lo) & (t <= hi) & ok).sum()
        self.count += ok.sum()

    def compute(self) -> torch.Tensor:
        return self.hits.to(torch.float64) / self.count
