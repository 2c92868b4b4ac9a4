"""SYNTHETIC series for the pretraining corpus: GP kernel compositions, structural, intermittent, mixups.

Every generator is numpy only, draws all its randomness from the ``numpy.random.Generator`` it is
given (same generator state -> same series) and returns a float64 array ``[T]`` (one univariate
series). What each one imitates:

- :func:`kernel_synth`: a draw from a Gaussian-process prior whose kernel is a random composition
  (``+`` or ``*``) of kernels from a bank (periodic, RBF, rational quadratic, linear, white noise,
  constant), after KernelSynth (Ansari et al. 2024, "Chronos", section 4.2). Smooth curves, trends,
  seasonalities at real-world periods and their interactions.
- :func:`structural`: a classical decomposition, level + trend + seasonalities + noise (additive,
  or multiplicative and then positive), with level shifts and outliers: retail, traffic, energy.
- :func:`intermittent`: non-negative demand with many exact zeros (spare parts, slow-moving items).
- :func:`ts_mixup`: convex combinations of windows of real series, after TSMixup (same paper).

:func:`generate` draws a whole corpus from a mix of them, at lengths and levels that vary over many
orders of magnitude. :data:`GENERATORS` maps each name to its function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

PERIODS = (4, 7, 12, 24, 48, 52, 96, 168, 288, 365)
"""Seasonal periods in steps typical of real frequencies (quarterly-of-hour ... daily-of-year)."""

MAX_GP_POINTS = 1024
"""Longest grid a GP prior is sampled on; longer series are sampled coarser and interpolated."""

KERNEL_NAMES = ("periodic", "rbf", "rational_quadratic", "linear", "white", "constant")
DEFAULT_MIX = {"kernel_synth": 0.4, "structural": 0.35, "intermittent": 0.1, "ts_mixup": 0.15}
_JITTERS = (1e-6, 1e-4, 1e-2)

KernelSpec = tuple[str, dict]
"""A kernel of the bank: its name (one of :data:`KERNEL_NAMES`) and its parameters."""


def _check_length(length: int, who: str) -> int:
    if int(length) != length or length < 1:
        raise ValueError(f"{who}: length must be a positive integer, got {length!r}")
    return int(length)


def draw_period(rng: np.random.Generator, length: int) -> float:
    """A seasonal period in steps: 70 % one of :data:`PERIODS` that fits (at most 2/3 of the
    series), else a random fraction U(0.05, 0.5) of the length (at least 2 steps)."""
    fits = [p for p in PERIODS if p <= max(2.0, length / 1.5)]
    if fits and rng.random() < 0.7:
        return float(fits[rng.integers(len(fits))])
    return max(2.0, float(rng.uniform(0.05, 0.5) * length))


def draw_kernel(rng: np.random.Generator, length: int) -> KernelSpec:
    """One kernel of the bank with random parameters (scales in steps of a series of ``length``).

    periodic: period from :func:`draw_period`, length scale U(0.5, 2); rbf and rational quadratic:
    length scale a fraction {0.01, 0.03, 0.1, 0.3, 1} of the length (>= 1 step), RQ alpha in
    {0.1, 1, 10}; linear: ``sigma0 + (x - c)(x' - c)`` on ``x = t / T``, c ~ U(0, 1), sigma0 ~
    U(0, 1); white: variance 10**U(-3, -1); constant: U(0.1, 1).
    """
    name = KERNEL_NAMES[rng.integers(len(KERNEL_NAMES))]
    scale = max(1.0, length * float(rng.choice([0.01, 0.03, 0.1, 0.3, 1.0])))
    draw = {
        "periodic": lambda: {"period": draw_period(rng, length), "scale": rng.uniform(0.5, 2.0)},
        "rbf": lambda: {"scale": scale},
        "rational_quadratic": lambda: {"scale": scale, "alpha": float(rng.choice([0.1, 1, 10]))},
        "linear": lambda: {"c": rng.uniform(0.0, 1.0), "sigma0": rng.uniform(0.0, 1.0)},
        "white": lambda: {"variance": 10 ** rng.uniform(-3.0, -1.0)},
        "constant": lambda: {"value": rng.uniform(0.1, 1.0)},
    }[name]
    return name, {k: float(v) for k, v in draw().items()}


def _evaluate(spec: KernelSpec, lags: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A stationary kernel as a vector over ``lags`` [m]; the linear one as a matrix [m, m]."""
    name, p = spec
    if name == "periodic":
        return np.exp(-2.0 * np.sin(np.pi * lags / p["period"]) ** 2 / p["scale"] ** 2)
    if name == "rbf":
        return np.exp(-0.5 * (lags / p["scale"]) ** 2)
    if name == "rational_quadratic":
        return (1.0 + lags**2 / (2.0 * p["alpha"] * p["scale"] ** 2)) ** -p["alpha"]
    if name == "white":
        return np.where(lags == 0, p["variance"], 0.0)
    if name == "constant":
        return np.full_like(lags, p["value"])
    if name == "linear":
        u = x / max(float(x[-1]) + 1.0, 1.0) - p["c"]
        return p["sigma0"] + np.outer(u, u)
    raise ValueError(f"kernel_synth: unknown kernel {name!r}; known: {', '.join(KERNEL_NAMES)}")


@lru_cache(maxsize=4)
def _lag_index(m: int) -> np.ndarray:
    """``|i - j|`` [m, m] (read-only, cached): expands a lag vector to a Toeplitz matrix."""
    idx = np.arange(m, dtype=np.intp)
    out = np.abs(idx[:, None] - idx[None, :])
    out.flags.writeable = False
    return out


def _combine(a: np.ndarray, b: np.ndarray, op: str, toeplitz: np.ndarray) -> np.ndarray:
    """``a op b`` where each is a lag vector (stationary) or a full matrix; vector op vector stays
    a vector, anything else is expanded to a matrix through the lag index ``toeplitz`` [m, m]."""
    if a.ndim != b.ndim:
        a, b = (a if a.ndim == 2 else a[toeplitz]), (b if b.ndim == 2 else b[toeplitz])
    return a + b if op == "+" else a * b


def _sample_gp(rng: np.random.Generator, cov: np.ndarray) -> np.ndarray:
    """One draw from N(0, cov) [m]: Cholesky with growing jitter, else a clipped eigen basis."""
    z = rng.standard_normal(cov.shape[0])
    ref = max(float(np.mean(np.diag(cov))), 1e-12)
    jittered = cov.copy()
    diag = np.einsum("ii->i", jittered)  # a writable view of the diagonal
    for jitter in _JITTERS:
        diag[:] = np.diag(cov) + jitter * ref
        try:
            chol = np.linalg.cholesky(jittered)
        except np.linalg.LinAlgError:
            continue
        draw = chol @ z
        if np.all(np.isfinite(draw)):
            return draw
    vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    return vecs @ (np.sqrt(np.clip(vals, 0.0, None)) * z)


def kernel_synth(
    rng: np.random.Generator,
    length: int,
    max_kernels: int = 5,
    kernels: Sequence[KernelSpec] | None = None,
) -> np.ndarray:
    """A draw [length] from a GP prior with a random composite kernel (KernelSynth).

    Draws 1..``max_kernels`` kernels from the bank (:func:`draw_kernel`) and folds them left to
    right with ``+`` or ``*`` chosen at random; ``kernels`` (tests, experiments) fixes the kernels
    instead and adds them all. The grid is the time steps ``0..length-1``; beyond
    :data:`MAX_GP_POINTS` steps the prior is sampled on an evenly spaced coarser grid and linearly
    interpolated (periods shorter than a few grid steps are then smoothed away). Never NaN or inf.
    """
    length = _check_length(length, "kernel_synth")
    if max_kernels < 1:
        raise ValueError(f"kernel_synth: max_kernels must be >= 1, got {max_kernels!r}")
    if kernels is None:
        specs = [draw_kernel(rng, length) for _ in range(int(rng.integers(1, max_kernels + 1)))]
        ops = [("+", "*")[rng.integers(2)] for _ in specs[1:]]
    else:
        specs, ops = list(kernels), ["+"] * (len(kernels) - 1)
        if not specs:
            raise ValueError("kernel_synth: kernels= must name at least one (name, params) kernel")
    m = min(length, MAX_GP_POINTS)
    x = np.linspace(0.0, length - 1.0, m)
    step = x[1] - x[0] if m > 1 else 1.0
    lags = np.arange(m, dtype=np.float64) * step
    toeplitz = _lag_index(m)
    cov = _evaluate(specs[0], lags, x)
    for spec, op in zip(specs[1:], ops, strict=True):
        cov = _combine(cov, _evaluate(spec, lags, x), op, toeplitz)
    if cov.ndim == 1:
        cov = cov[toeplitz]
    draw = _sample_gp(rng, cov)
    if m < length:
        draw = np.interp(np.arange(length, dtype=np.float64), x, draw)
    return np.asarray(draw, dtype=np.float64)


def _ar1(rng: np.random.Generator, length: int, phi: float, sigma: float) -> np.ndarray:
    """Stationary AR(1) noise [length] with marginal standard deviation ``sigma``."""
    e = rng.standard_normal(length) * sigma * np.sqrt(1.0 - phi**2)
    out = np.empty(length)
    out[0] = rng.standard_normal() * sigma
    for t in range(1, length):
        out[t] = phi * out[t - 1] + e[t]
    return out


def _trend(rng: np.random.Generator, length: int) -> np.ndarray:
    """None, linear, damped (flattening) or piecewise linear with one change point; total change
    of order N(0, 1) x U(0, 3) over the series."""
    u = np.arange(length, dtype=np.float64) / length
    kind = ("none", "linear", "damped", "piecewise")[rng.integers(4)]
    b = rng.normal() * rng.uniform(0.0, 3.0)
    if kind == "linear":
        return b * u
    if kind == "damped":
        phi = rng.uniform(0.9, 0.999)
        t = np.arange(length, dtype=np.float64)
        return b * (1.0 - phi**t) / (1.0 - phi**length)
    if kind == "piecewise":
        cp = rng.uniform(0.2, 0.8)
        return b * np.minimum(u, cp) + rng.normal() * 2.0 * np.maximum(u - cp, 0.0)
    return np.zeros(length)


def _seasonal(rng: np.random.Generator, length: int) -> np.ndarray:
    """0-3 seasonal components: period from :func:`draw_period`, 1-4 harmonics (fewer for short
    periods) with 1/k-decaying random Fourier coefficients, amplitude U(0.3, 2)."""
    t = np.arange(length, dtype=np.float64)
    out = np.zeros(length)
    for _ in range(int(rng.integers(0, 4))):
        period = draw_period(rng, length)
        n_harm = int(rng.integers(1, max(1, min(4, int(period // 2))) + 1))
        k = np.arange(1, n_harm + 1, dtype=np.float64)
        a, b = rng.standard_normal((2, n_harm)) / k
        angle = 2.0 * np.pi * np.outer(t, k) / period
        wave = np.cos(angle) @ a + np.sin(angle) @ b
        spread = float(np.std(wave))
        out += rng.uniform(0.3, 2.0) * (wave / spread if spread > 1e-9 else wave)
    return out


def structural(rng: np.random.Generator, length: int) -> np.ndarray:
    """A level + trend + seasonal + noise series [length] (classical decomposition).

    Trend (:func:`_trend`): none, linear, damped or piecewise with a change point. 0-3 seasonal
    components (:func:`_seasonal`). Noise of standard deviation U(0.05, 0.5): AR(1) with phi ~
    U(-0.3, 0.95), or heteroscedastic (white noise times a slowly varying volatility exp(v_t), v an
    AR(1) with phi 0.98 and standard deviation 0.5). With probability 0.25, 1-2 level shifts of
    N(0, 1); with probability 0.2, outliers on ~0.5 % of the steps (at least one) of 5x the noise
    level. 35 % of the series are multiplicative: ``exp(level + 0.3 * components)``, positive;
    the rest are additive: ``level + components`` with level N(0, 1).
    """
    length = _check_length(length, "structural")
    parts = _trend(rng, length) + _seasonal(rng, length)
    sigma = rng.uniform(0.05, 0.5)
    if rng.random() < 0.5:
        parts += _ar1(rng, length, rng.uniform(-0.3, 0.95), sigma)
    else:
        vol = np.exp(_ar1(rng, length, 0.98, 0.5))
        parts += sigma * vol * rng.standard_normal(length)
    if rng.random() < 0.25:
        for at in rng.integers(1, max(2, length), size=int(rng.integers(1, 3))):
            parts[at:] += rng.normal()
    if rng.random() < 0.2:
        where = rng.integers(0, length, size=max(1, int(0.005 * length)))
        parts[where] += rng.choice([-1.0, 1.0], size=where.size) * 5.0 * sigma
    if rng.random() < 0.35:
        return np.exp(rng.normal() + 0.3 * parts)
    return rng.normal() + parts


def intermittent(rng: np.random.Generator, length: int) -> np.ndarray:
    """Non-negative intermittent demand [length] with many exact zeros (Croston-type).

    Occurrence: Bernoulli(p_t) with p ~ U(0.05, 0.6); 40 % of series make it seasonal,
    ``p_t = clip(p (1 + a sin(2 pi t / period + phase)), 0.01, 0.95)`` with a ~ U(0.3, 0.9).
    Sizes when demand occurs (always > 0): 1 + Poisson(10**U(-0.5, 1.5)), 1 + negative binomial
    (n ~ U(0.5, 5), p ~ U(0.1, 0.7)), or gamma (shape U(0.5, 3), scale 10**U(-1, 2)).
    """
    length = _check_length(length, "intermittent")
    p = np.full(length, rng.uniform(0.05, 0.6))
    if rng.random() < 0.4:
        t = np.arange(length, dtype=np.float64)
        wave = np.sin(2.0 * np.pi * t / draw_period(rng, length) + rng.uniform(0.0, 2.0 * np.pi))
        p = np.clip(p * (1.0 + rng.uniform(0.3, 0.9) * wave), 0.01, 0.95)
    occurs = rng.random(length) < p
    kind = ("poisson", "negative_binomial", "gamma")[rng.integers(3)]
    if kind == "poisson":
        sizes = 1.0 + rng.poisson(10 ** rng.uniform(-0.5, 1.5), size=length)
    elif kind == "negative_binomial":
        sizes = 1.0 + rng.negative_binomial(rng.uniform(0.5, 5.0), rng.uniform(0.1, 0.7), length)
    else:
        sizes = rng.gamma(rng.uniform(0.5, 3.0), 10 ** rng.uniform(-1.0, 2.0), size=length)
        sizes = np.maximum(sizes, np.finfo(np.float64).tiny)
    return np.where(occurs, sizes, 0.0).astype(np.float64)


def ts_mixup(
    rng: np.random.Generator, pool: Sequence[np.ndarray], length: int, max_k: int = 3
) -> np.ndarray:
    """A convex mix [<= length] of k ~ U{1..max_k} random windows of series in ``pool`` (TSMixup).

    Each window (a uniformly drawn series of the pool, a uniformly placed window of ``length``
    steps; a series shorter than ``length`` is used whole) is divided by the mean absolute value of
    its finite values, then the windows are mixed with Dirichlet(1.5) weights. Windows are aligned
    at their ends and cut to the shortest, so the result is SHORTER than ``length`` when a chosen
    series is. NaN marks a missing value: where some parts are NaN the others are mixed with their
    weights renormalised; the result is NaN only where all parts are. Series with no finite value
    are never drawn.
    """
    length = _check_length(length, "ts_mixup")
    if max_k < 1:
        raise ValueError(f"ts_mixup: max_k must be >= 1, got {max_k!r}")
    series = [np.asarray(s, dtype=np.float64) for s in pool]
    for i, s in enumerate(series):
        if s.ndim != 1:
            raise ValueError(f"ts_mixup: pool[{i}] has shape {s.shape}; expected a 1-D series [T]")
    usable = [s for s in series if np.isfinite(s).any()]
    if not usable:
        raise ValueError("ts_mixup: pool holds no series with a finite value; expected >= 1")
    k = int(rng.integers(1, max_k + 1))
    parts = []
    for _ in range(k):
        s = usable[rng.integers(len(usable))]
        start = int(rng.integers(0, s.size - length + 1)) if s.size > length else 0
        window = s[start : start + length]
        scale = np.nanmean(np.abs(window)) if np.isfinite(window).any() else np.nan
        parts.append(window / (scale if np.isfinite(scale) and scale > 0 else 1.0))
    m = min(p.size for p in parts)
    stack = np.stack([p[p.size - m :] for p in parts])  # [k, m]
    weights = rng.dirichlet(np.full(k, 1.5))[:, None] * np.isfinite(stack)
    total = weights.sum(axis=0)
    mixed = (weights * np.nan_to_num(stack, nan=0.0)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, mixed / total, np.nan)


GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "kernel_synth": kernel_synth,
    "structural": structural,
    "intermittent": intermittent,
    "ts_mixup": ts_mixup,
}
"""Name -> generator. All take ``(rng, length)`` except ``ts_mixup(rng, pool, length)``."""


def _mix_weights(mix: dict[str, float] | None, has_pool: bool) -> tuple[list[str], np.ndarray]:
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = sorted(set(mix) - set(GENERATORS))
    if unknown:
        raise ValueError(
            f"generate: unknown generator(s) in mix: {', '.join(unknown)}; "
            f"known: {', '.join(GENERATORS)}"
        )
    bad = {k: v for k, v in mix.items() if not (np.isfinite(v) and v >= 0)}
    if bad:
        raise ValueError(f"generate: mix weights must be finite and >= 0, got {bad}")
    if not has_pool:
        mix.pop("ts_mixup", None)
    names = [k for k, v in mix.items() if v > 0]
    if not names:
        raise ValueError(
            "generate: mix has no positive weight on a usable generator "
            "(ts_mixup needs pool=); expected e.g. {'kernel_synth': 1.0}"
        )
    weights = np.array([mix[k] for k in names], dtype=np.float64)
    return names, weights / weights.sum()


def random_affine(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    """``y`` [T] at a random level: times 10**U(-2, 5); a series that is not all positive is also
    shifted by N(0, 3) of its standard deviation first. A positive series stays positive."""
    scale = 10 ** rng.uniform(-2.0, 5.0)
    if not np.isfinite(y).any():
        return y.copy()  # an all-missing mixup window: nothing to scale
    if np.nanmin(y) > 0:
        return y * scale
    spread = float(np.nanstd(y))
    return (y + rng.normal(0.0, 3.0) * (spread + 1e-12)) * scale


def generate(
    rng: np.random.Generator,
    n: int,
    length_range: tuple[int, int] = (64, 1024),
    mix: dict[str, float] | None = None,
    pool: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """``n`` synthetic series, each float64 [T] with T drawn log-uniformly in ``length_range``
    (inclusive).

    The generator of each series is drawn with the weights of ``mix`` (name -> weight, names of
    :data:`GENERATORS`; default :data:`DEFAULT_MIX`); without a ``pool`` the weight of ts_mixup is
    dropped and the rest renormalised. Every series but the intermittent ones then goes through
    :func:`random_affine` (levels over seven orders of magnitude); intermittent ones stay counts /
    sizes >= 0. A ts_mixup series is shorter than its drawn T when its pool series are, and holds
    NaN only where all its parts are missing.
    """
    if int(n) != n or n < 0:
        raise ValueError(f"generate: n must be an integer >= 0, got {n!r}")
    lo, hi = length_range
    if not (int(lo) == lo and int(hi) == hi and 1 <= lo <= hi):
        raise ValueError(
            f"generate: length_range must be (min, max), 1 <= min <= max; got {lo, hi}"
        )
    names, weights = _mix_weights(mix, bool(pool))
    out = []
    for _ in range(int(n)):
        length = int(np.clip(np.floor(np.exp(rng.uniform(np.log(lo), np.log(hi + 1)))), lo, hi))
        name = names[rng.choice(len(names), p=weights)]
        args = (rng, pool, length) if name == "ts_mixup" else (rng, length)
        y = GENERATORS[name](*args)
        out.append(y if name == "intermittent" else random_affine(rng, y))
    return out
