"""Spread calibration for rollouts: fitted where the recorded actions look like a user's plan.

``fit`` calibrates on its validation windows, the last horizons of every series: their future
covariates follow the training policy (on the building simulator, a heating level held for 2-8
hours). A rollout asks about other plans: a setting held constant for a day, a schedule. The only
windows whose truth under such a plan is observed are those where the recorded action itself was
held from the forecast origin on. :func:`recalibrate_rollouts` therefore

1. takes the candidate origins of the same tail of every series that ``fit`` holds out
   (``validation_fraction`` of its length, at least one horizon), every step;
2. scores each origin by its **hold**: the number of steps from the origin (at most the horizon)
   for which every action column keeps the value it has at the origin (:func:`hold_from`);
3. keeps, per series, the origins of the longest holds whose future blocks do not overlap
   (``windows`` in all, shared evenly over the series; ties: the later origin), and
4. fits the centre-preserving spread factor (``calibration="spread"``, the default) on those
   windows, with the recorded future covariates as the plan.

The plan means, hence the effects, do not change (the factor widens each plan's paths around its
mean); only the width of the intervals follows these windows. ``history["rollout_calibration"]``
records the windows used and their mean hold beside that of ``fit``'s validation windows.
Actions are the future covariates of a few levels that varied in training (tsdiff.support:
those with hold lengths); continuous drivers (a weather forecast) are not held.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tsdiff.data.frames import DataError, Series
from tsdiff.data.windows import make_window
from tsdiff.train import holdout


def hold_from(future_cov: np.ndarray, end: int, H: int) -> int:
    """Steps from ``end`` (at most ``H``) for which every column of future_cov [T, Ca] keeps its
    value at ``end`` (0 when ``end`` is past the series)."""
    block = future_cov[end : end + H]
    if len(block) == 0:
        return 0
    same = np.all(block == block[0], axis=1)
    return int(len(same) if same.all() else np.argmin(same))


def action_columns(forecaster, actions: list[str] | None = None) -> list[str]:
    """The action columns: ``actions``, or the future covariates of a few levels that varied in
    training (their support records hold lengths; see tsdiff.support)."""
    known = list(forecaster.columns.future_covariates)
    if actions is not None:
        if unknown := sorted(set(actions) - set(known)):
            raise DataError(f"actions: {unknown} are not future covariates of this model {known}")
        return list(actions)
    support = forecaster.history.get("covariate_support", {})
    found = [c for c in known if support.get(c, {}).get("varied") and support[c].get("max_hold")]
    if not found:
        raise DataError(
            f"actions: none of the future covariates {known} is an action of a few levels that "
            "varied in training; name them with actions=[...]"
        )
    return found


def held_origins(s: Series, cols: list[int], H: int, fraction: float, k: int):
    """Up to ``k`` (origin, hold) of series ``s`` in its last ``fraction`` (at least H + 1
    steps): the longest holds of the action columns ``cols``, future blocks not overlapping."""
    region = max(H + 1, int(fraction * len(s)))
    lo = max(1, len(s) - region)
    cands = [(hold_from(s.future_cov[:, cols], e, H), e) for e in range(lo, len(s) - H + 1)]
    picked: list[tuple[int, int]] = []
    for hold, e in sorted(cands, reverse=True):
        if len(picked) == k:
            break
        if all(abs(e - p) >= H for p, _ in picked):
            picked.append((e, hold))
    return picked


def recalibrate_rollouts(
    forecaster,
    df: pd.DataFrame,
    *,
    actions: list[str] | None = None,
    windows: int = 32,
    calibration: str = "spread",
):
    """Refit the calibration for rollouts on the windows of ``df`` where the actions were held.

    Args:
        forecaster: a fitted :class:`tsdiff.Forecaster` with future covariates.
        df: a long frame of the items (e.g. the training frame; recent data the model has not
            trained on is better: with ``final_phase="continue"`` the last phase trained on the
            whole training frame, as for ``recalibrate``).
        actions: the action columns (default: :func:`action_columns`).
        windows: how many windows in all (shared evenly over the series).
        calibration: what to fit (``"spread"`` keeps the plan means; see tsdiff.calibration).

    Returns:
        the forecaster, recalibrated; ``history["rollout_calibration"]`` = {"actions",
        "windows", "mean_hold", "policy_mean_hold"} (hold: steps of the horizon the actions
        stayed at their origin value; policy: the same for ``fit``'s validation windows).
    """
    forecaster._check_fitted()
    c = forecaster.config
    H, L = c.prediction_length, c.context_length
    names = action_columns(forecaster, actions)
    idx = [forecaster.columns.future_covariates.index(n) for n in names]
    series = forecaster._series(df, min_length=H + 2)
    if not series:
        raise DataError(f"df: no series longer than {H + 1} steps to take rollout windows from")
    k = max(1, -(-windows // len(series)))
    ws, holds = [], []
    for s in series:
        for e, hold in held_origins(s, idx, H, c.validation_fraction, k):
            ws.append(make_window(s, e, L, H, c.freq, forecaster.lags))
            holds.append(hold)
    _, val = holdout(series, c, lags=forecaster.lags)
    policy = [hold_from(v["fcov_fut"][:, idx], 0, H) for v in val] if val else []
    forecaster.config = dataclasses.replace(c, calibration=calibration, calibrate=True)
    forecaster.calibrate(ws)
    forecaster.history["rollout_calibration"] = {
        "actions": names,
        "windows": len(ws),
        "mean_hold": float(np.mean(holds)),
        "policy_mean_hold": float(np.mean(policy)) if policy else None,
    }
    return forecaster
