"""What the training data showed of each action: the support that rollouts are checked against.

A rollout asks "what happens under this plan"; the model can only answer for plans like those in
its training data. For every known-future covariate (an action or a driver) :func:`covariate_support`
records, over all training series, the range of values seen, whether the column varied at all,
and, for a column of a few levels (at most ``MAX_LEVELS`` distinct values: switches, set-points,
the usual form of an action), the longest run for which one level was held. A continuous driver
(an outdoor-temperature forecast) has no hold lengths to respect. :func:`check_plans` compares each plan with it:

- a column that **never varied** in training (always the same value) cannot have a learned effect:
  a plan that sets it to another value is refused (:class:`UnsupportedPlanError`, one line naming
  the column, the value seen and the values asked);
- a plan whose values leave the seen range, or that holds one value for longer than any run seen
  in training, is **extrapolated**: an :class:`ExtrapolationWarning` names the column, what was seen
  and what is asked, and the rollout's summary marks the plan's effects as extrapolated.
"""

from __future__ import annotations

import warnings

import numpy as np

from tsdiff.data.frames import DataError, Series

MAX_LEVELS = 20
"""A column with at most this many distinct training values is an action of levels: its hold
lengths are checked."""


class UnsupportedPlanError(DataError):
    """A plan sets an action that never varied in the training data."""


class ExtrapolationWarning(UserWarning):
    """A plan asks for values or hold lengths beyond those of the training data."""


def longest_hold(x: np.ndarray) -> int:
    """Length of the longest run of equal consecutive finite values in ``x`` [T] (0 if none)."""
    x = np.asarray(x, dtype=np.float64)
    if not x.size:
        return 0
    ok = np.isfinite(x)
    same = ok[1:] & ok[:-1] & (x[1:] == x[:-1])  # [T - 1]: step t + 1 continues t's run
    starts = np.flatnonzero(np.concatenate([[True], ~same]))  # first index of every run
    runs = np.diff(np.append(starts, len(x)))
    return int((runs * ok[starts]).max())


def covariate_support(series: list[Series], names: list[str]) -> dict[str, dict]:
    """Per future covariate: ``{"low", "high", "max_hold", "varied"}`` over every series' rows;
    ``max_hold`` is None for a column of more than ``MAX_LEVELS`` distinct values.

    ``series``: the training series (their ``future_cov`` [T, Cf] columns are ``names``).
    JSON-ready (floats and ints), saved with the model in its history.
    """
    out = {}
    for j, name in enumerate(names):
        cols = [np.asarray(s.future_cov[:, j], np.float64) for s in series]
        vals = np.concatenate(cols) if cols else np.zeros(0)
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            continue
        low, high = float(vals.min()), float(vals.max())
        out[name] = {
            "low": low,
            "high": high,
            "max_hold": (
                int(max(longest_hold(c) for c in cols))
                if len(np.unique(vals)) <= MAX_LEVELS
                else None
            ),
            "varied": bool(high > low),
        }
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def check_plans(
    support: dict[str, dict], names: list[str], blocks: dict[str, list[np.ndarray]]
) -> dict[str, list[str]]:
    """Check every plan's covariate values against the training ``support``.

    Args:
        support: :func:`covariate_support` of the training data (columns absent from it are not
            checked).
        names: the future covariate names, the columns of each block.
        blocks: plan name -> one [horizon, Cf] array per item (the plan's values).

    Returns:
        plan name -> reasons (one line each) it is extrapolated; empty lists for plans inside the
        support. Warns :class:`ExtrapolationWarning` once per plan and column outside it.

    Raises:
        UnsupportedPlanError: a plan sets a column that never varied in training to another value.
    """
    reasons: dict[str, list[str]] = {plan: [] for plan in blocks}
    for j, name in enumerate(names):
        seen = support.get(name)
        if seen is None:
            continue
        for plan, arrays in blocks.items():
            vals = np.concatenate([a[:, j] for a in arrays]).astype(np.float64)
            low, high = float(vals.min()), float(vals.max())
            if not seen["varied"]:
                if low != seen["low"] or high != seen["high"]:
                    asked = sorted({_fmt(v) for v in np.unique(vals)})
                    raise UnsupportedPlanError(
                        f"plan {plan!r}: column {name!r} never varied in the training data "
                        f"(always {_fmt(seen['low'])}), so its effect cannot have been learned; "
                        f"the plan sets it to {', '.join(asked[:5])}"
                    )
                continue
            if low < seen["low"] or high > seen["high"]:
                reasons[plan].append(
                    f"column {name!r}: values {_fmt(low)}..{_fmt(high)} asked, "
                    f"{_fmt(seen['low'])}..{_fmt(seen['high'])} seen in training"
                )
            hold = max(longest_hold(a[:, j]) for a in arrays)
            if seen["max_hold"] is not None and hold > seen["max_hold"]:
                reasons[plan].append(
                    f"column {name!r}: a value held for {hold} steps asked, "
                    f"at most {seen['max_hold']} seen in training"
                )
    for plan, why in reasons.items():
        for line in why:
            warnings.warn(f"plan {plan!r} is extrapolated: {line}", ExtrapolationWarning, 2)
    return reasons
