"""Reference forecasters computed on the same backtest windows as tsdiff: seasonal naive (numpy)
and ETS (statsmodels, the ``bench`` extra, imported when ETS is first used).

Seasonal naive repeats the last observed season of the history: ``y_hat[h] = y[T - m + (h mod m)]``
with ``m`` the season length. Missing history values are forward-filled first (then
back-filled); a channel with no observed value at all forecasts 0. When the history is shorter
than one season, the last observed value is repeated (naive).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from tsdiff.data.protocol import Protocol, origin_positions


def _fill(history: np.ndarray) -> np.ndarray:
    """Forward- then back-fill NaNs per channel of ``[T, C]``; all-NaN channels become 0."""
    h = np.array(history, dtype=np.float64)
    for c in range(h.shape[1]):
        col = h[:, c]
        ok = ~np.isnan(col)
        if not ok.any():
            h[:, c] = 0.0
            continue
        idx = np.where(ok, np.arange(len(col)), 0)
        np.maximum.accumulate(idx, out=idx)
        col = col[idx]
        first = np.argmax(ok)
        col[:first] = col[first]
        h[:, c] = col
    return h


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Point forecast ``[H, C]`` from a history ``[T, C]`` (or ``[T]`` -> ``[H]``).

    Args:
        history: past values, NaN where unobserved; T >= 1.
        horizon: H steps to forecast.
        season: m >= 1 (1 = naive).
    """
    if season < 1:
        raise ValueError(f"season: expected a positive integer, got {season}")
    h = np.asarray(history, dtype=np.float64)
    flat = h.ndim == 1
    h = _fill(h[:, None] if flat else h)
    if len(h) == 0:
        raise ValueError("history: expected at least one time step")
    m = season if len(h) >= season else 1
    last = h[len(h) - m :]
    out = last[np.arange(horizon) % m]
    return out[:, 0] if flat else out


def seasonal_naive_samples(insample: list[np.ndarray], horizon: int, season: int) -> np.ndarray:
    """Seasonal naive for every backtest window as a one-path ensemble: ``[N, 1, H, C]``.

    Args:
        insample: length-N list of histories ``[T_n, C]`` (as ``Forecaster.backtest`` returns).
    """
    return np.stack([seasonal_naive(np.asarray(z), horizon, season)[None] for z in insample])


def _ets_model():
    """statsmodels' ETSModel, or one clear ImportError naming the extra that provides it."""
    try:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    except ImportError as e:
        raise ImportError(
            f"ETS needs statsmodels (pip install statsmodels, or the `bench` extra): {e}"
        ) from None
    return ETSModel


ETS_CANDIDATES = [  # (trend, damped, seasonal); additive errors throughout
    (None, False, None),
    ("add", False, None),
    ("add", True, None),
    (None, False, "add"),
    ("add", False, "add"),
    ("add", True, "add"),
]


def _fit_ets(y: np.ndarray, m: int, candidates):
    """Fit each candidate ETS spec to ``y`` ``[T]``; keep the lowest AICc. -> (spec, params)."""
    ETSModel = _ets_model()  # noqa: N806

    best = None
    for trend, damped, seasonal in candidates:
        if seasonal and len(y) < 2 * m + 2:
            continue
        model = ETSModel(
            y, error="add", trend=trend, damped_trend=damped, seasonal=seasonal,
            seasonal_periods=m if seasonal else None,
        )  # fmt: skip
        res = model.fit(disp=False, maxiter=200)
        if best is None or res.aicc < best[2]:
            best = ((trend, damped, seasonal), res.params, res.aicc)
    return best[0], best[1]


def ets_samples(
    df: pd.DataFrame,
    protocol: Protocol,
    n_samples: int = 100,
    seed: int = 0,
    spec: str | tuple = "auto",
    max_fit_length: int | None = None,
    quick: bool = False,
) -> tuple[np.ndarray, float, float]:
    """ETS by statsmodels ``ETSModel`` with additive errors, one model per (item, channel).

    Parameters are estimated once on the training part (data before the item's first origin;
    only its last ``max_fit_length`` points if given). For each origin the fixed-parameter model
    is run over the data up to it and ``simulate(H, anchor=origin, repetitions=S)`` draws the
    sample paths (coherent over the horizon).

    Args:
        spec: ``"auto"``: AICc selection over trend {none, additive, damped} x season {none,
            additive} for monthly data (us_employment, as DATA.md), ETS(A,Ad,A) with
            ``m = season_length`` otherwise; ``"aicc"`` forces the selection; or one
            ``(trend, damped, seasonal)`` tuple.
        quick: fit on the last ``10 m`` points at most, only ETS(A,N,A).
    """
    ETSModel = _ets_model()  # noqa: N806
    m = protocol.season_length
    if quick:
        candidates, max_fit_length = [(None, False, "add")], min(max_fit_length or 10**9, 10 * m)
    elif spec == "aicc" or (spec == "auto" and protocol.freq in ("MS", "M", "ME")):
        candidates = ETS_CANDIDATES
    else:
        candidates = [spec if isinstance(spec, tuple) else ("add", True, "add")]
    rng = np.random.default_rng(seed)
    fit_s = pred_s = 0.0
    per_window: list[list[np.ndarray]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, rows, positions in origin_positions(df, protocol):
            start = max(0, positions[0] - max_fit_length) if max_fit_length else 0
            chans = []
            for col in protocol.target_columns:
                y = rows[col].to_numpy(np.float64)
                t0 = time.perf_counter()
                (trend, damped, seasonal), params = _fit_ets(y[start : positions[0]], m, candidates)
                t1 = time.perf_counter()
                model = ETSModel(
                    y[start : positions[-1]],
                    error="add", trend=trend, damped_trend=damped, seasonal=seasonal,
                    seasonal_periods=m if seasonal else None,
                )  # fmt: skip
                res = model.smooth(params)
                sims = []
                for p in positions:
                    anchor = "end" if p - start == model.nobs else p - start
                    sim = res.simulate(
                        protocol.prediction_length, anchor=anchor, repetitions=n_samples, rng=rng
                    )
                    sims.append(np.asarray(sim, dtype=np.float64).T)  # [S, H]
                chans.append(sims)
                fit_s += t1 - t0
                pred_s += time.perf_counter() - t1
            per_window += [list(w) for w in zip(*chans, strict=True)]
    samples = np.stack([np.stack(w, axis=-1) for w in per_window])
    return samples, fit_s, pred_s


__all__ = ["ETS_CANDIDATES", "ets_samples", "seasonal_naive", "seasonal_naive_samples"]
