"""Action-conditioned scenario rollouts: many plausible futures per candidate plan.

An action is a known-future covariate that the user sets. :func:`rollout` takes a history and A
plans (each a long frame of every future covariate for the rollout horizon) and returns sample
paths ``[A, S, horizon, C]`` per item, drawn with **common random numbers**: every plan is sampled
with the same random stream, so differences between plans come from the actions, not from noise.

Horizons beyond the trained ``prediction_length`` are reached by appending blocks (iLLaDA's
variable-length idea): condition on the history plus the path generated so far, generate the next
block, slide. Each path continues from its own past, so paths stay coherent across blocks.

Train the forecaster for rollouts with ``covariate_scaling="global"`` and ``scale_features=True``:
per-window scaling maps every constant plan ("always off", "always half") to the same input and
hides the target's level, so effects in absolute units are blurred; on the synthetic building
(benchmarks/scenarios.py) these two settings cut the error of the estimated plan effect from
26.5 % to 11.4 % at the same training. Calibrate it with ``calibration="spread"``: a spread factor
fitted on validation windows widens each plan's paths around their mean, fixing under-coverage
without moving the means (a softmax temperature above 1 would also shrink the effects).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from tsdiff.calibration import widen
from tsdiff.conditioning import extend, future_block
from tsdiff.data.frames import DataError, Series
from tsdiff.data.windows import make_window
from tsdiff.support import check_plans

Z90 = 1.6449
"""Normal 0.95 quantile: the half-width factor of a central 90 % interval."""

T90 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812)
"""Student-t 0.95 quantiles for 1..10 degrees of freedom (beyond: the normal's)."""


def effect_intervals(per_path: np.ndarray, reference: int, members=None) -> dict[str, np.ndarray]:
    """Effects of every plan against plan ``reference`` with 90 % intervals.

    Args:
        per_path: [A, N] one number per plan and path (e.g. the path's horizon mean), paths paired
            across plans (common random numbers).
        reference: index of the reference plan.
        members: [N] the member of every path (:func:`rollout_ensemble`), or None (one model).

    Returns:
        dict of [A] arrays: ``effect`` (mean paired difference), ``low``/``high`` (Monte-Carlo:
        effect -+ 1.645 se, se the standard error of the pooled mean difference) and, with
        ``members``, ``members_effect`` [A, K] and ``low_model``/``high_model``:
        effect -+ sqrt((t tau)^2 + (1.645 se)^2), where tau^2 = max(B - W, 0) is the variance of
        the members' effects beyond their Monte-Carlo noise (B: variance of the K member effects;
        W: mean of their squared standard errors; law of total variance) and t the Student-t
        0.95 quantile with K - 1 degrees of freedom. The model interval is never narrower than
        the Monte-Carlo one and shares its centre.
    """
    d = per_path - per_path[reference]  # [A, N]
    n = d.shape[1]
    effect = d.mean(1)
    se = _se(d)
    out = {"effect": effect, "low": effect - Z90 * se, "high": effect + Z90 * se}
    if members is None:
        return out
    members = np.asarray(members)
    if members.shape != (n,):
        raise ValueError(f"members: expected shape ({n},), got {members.shape}")
    ks = np.unique(members)
    if len(ks) < 2:
        raise ValueError("members: expected paths of at least 2 members")
    per_member = np.stack([d[:, members == k].mean(1) for k in ks], axis=1)  # [A, K]
    se_k = np.stack([_se(d[:, members == k]) for k in ks], axis=1)  # [A, K]
    between = per_member.var(1, ddof=1)
    tau2 = np.maximum(between - (se_k**2).mean(1), 0.0)
    t = T90[len(ks) - 2] if len(ks) - 1 <= len(T90) else Z90
    half = np.sqrt(t * t * tau2 + (Z90 * se) ** 2)
    out.update(members_effect=per_member, low_model=effect - half, high_model=effect + half)
    return out


def _se(d: np.ndarray) -> np.ndarray:
    """Standard error of the mean over axis 1 of d [A, n] (0 for a single path)."""
    n = d.shape[1]
    return d.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(d))


@dataclass
class Scenarios:
    """Rollouts of A plans: ``samples[item]`` is [A, S, horizon, C]."""

    samples: dict[str, np.ndarray]
    plans: list[str]
    targets: list[str]
    starts: dict[str, pd.Timestamp]
    nfe: int = 0
    extrapolated: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Plan -> why it lies outside the training data's support (tsdiff.support); empty if inside."""
    members: np.ndarray | None = None
    """[S] the ensemble member of every path (tsdiff.effects.rollout_ensemble); None: one model."""

    def _get(self, item: str | None) -> np.ndarray:
        if item is None:
            if len(self.samples) != 1:
                raise ValueError(f"item: choose one of {sorted(self.samples)}")
            item = next(iter(self.samples))
        if item not in self.samples:
            raise ValueError(f"item: unknown item {item!r}; have {sorted(self.samples)}")
        return self.samples[item]

    def mean(self, item: str | None = None) -> np.ndarray:
        """[A, horizon, C]."""
        return self._get(item).mean(axis=1)

    def quantile(self, q: float, item: str | None = None) -> np.ndarray:
        """[A, horizon, C]."""
        return np.quantile(self._get(item), q, axis=1)

    def prob_exceed(
        self, threshold: float, *, channel: int = 0, item: str | None = None, any_step=True
    ):
        """P(path crosses ``threshold``) per plan [A] (any step), or per step [A, horizon]."""
        above = self._get(item)[..., channel] > threshold  # [A, S, H]
        return above.any(-1).mean(1) if any_step else above.mean(1)

    def effect(
        self, plan: str, reference: str, *, item: str | None = None, level: float = 0.9
    ) -> dict:
        """Difference of means plan - reference per step, with a ``level`` interval.

        With common random numbers the paths are paired, so the interval of the mean difference
        uses the spread of per-path differences: mean +- z * sd / sqrt(S). Arrays [horizon, C].
        """
        x = self._get(item)
        a, r = self.plans.index(plan), self.plans.index(reference)
        d = x[a] - x[r]  # [S, H, C]
        m, se = d.mean(0), d.std(0, ddof=1) / np.sqrt(d.shape[0])
        z = {0.8: 1.2816, 0.9: 1.6449, 0.95: 1.96}.get(level, 1.6449)
        return {"mean": m, "low": m - z * se, "high": m + z * se}

    def summary(self, reference: str | None = None, item: str | None = None) -> pd.DataFrame:
        """One row per plan: mean over the horizon, 10/50/90 % quantiles of the horizon mean,
        and the effect (difference of horizon means) against ``reference`` with its interval.

        ``effect_low``/``effect_high`` hold the Monte-Carlo error of the paired path means
        only. Rollouts of an ensemble (:func:`tsdiff.effects.rollout_ensemble`) add
        ``effect_low_model``/``effect_high_model``: the 90 % interval that also holds the spread
        of the members' effects, the model's own uncertainty (:func:`effect_intervals`).

        ``extrapolated`` is True for a plan (or, with a reference, a plan or the reference)
        outside what the training data showed (:attr:`extrapolated` says why): its effect is the
        model's extrapolation, which even the model interval of one architecture and one data
        set may not cover."""
        x = self._get(item)[..., 0]  # [A, S, H], first channel
        per_path = x.mean(-1)  # [A, S]
        eff = None
        if reference is not None:
            eff = effect_intervals(per_path, self.plans.index(reference), self.members)
        rows = []
        for a, name in enumerate(self.plans):
            row = {
                "plan": name,
                "mean": per_path[a].mean(),
                "q10": np.quantile(per_path[a], 0.1),
                "q50": np.quantile(per_path[a], 0.5),
                "q90": np.quantile(per_path[a], 0.9),
                "extrapolated": bool(
                    self.extrapolated.get(name)
                    or (reference is not None and self.extrapolated.get(reference))
                ),
            }
            if eff is not None:
                row.update(effect=eff["effect"][a], effect_low=eff["low"][a],
                           effect_high=eff["high"][a])  # fmt: skip
                if "low_model" in eff:
                    row.update(effect_low_model=eff["low_model"][a],
                               effect_high_model=eff["high_model"][a])  # fmt: skip
            rows.append(row)
        return pd.DataFrame(rows)


def _rollout_one(
    forecaster, s: Series, fcov: np.ndarray, horizon: int, S: int, seed: int, sampler
) -> tuple[np.ndarray, int]:
    """Paths [S, horizon, C] of one item under one plan's covariates fcov [horizon, Cf]."""
    c = forecaster.config
    H, L = c.prediction_length, c.context_length
    g = torch.Generator(device=forecaster.device).manual_seed(seed)
    lags, cal = forecaster.lags, forecaster.calendar
    ext = extend(s, fcov, c.freq, cal)  # history + the whole plan, targets unobserved
    n0 = len(s)
    paths = np.zeros((S, 0, s.target.shape[1]), np.float32)
    nfe = 0
    while paths.shape[1] < horizon:
        done = paths.shape[1]
        if done == 0:
            windows, n = [make_window(ext, n0, L, H, c.freq, lags, cal)], S
        else:  # each path continues from its own generated past
            windows, n = [], 1
            for p in paths:
                e = dataclasses.replace(ext, target=ext.target.copy())
                e.target[n0 : n0 + done] = p
                windows.append(make_window(e, n0 + done, L, H, c.freq, lags, cal))
        opts = forecaster.sampler_options(**sampler)
        out, stats = forecaster.sample_windows(windows, n, generator=g, **opts)
        block = out.reshape(S, H, -1).cpu().numpy()
        paths = np.concatenate([paths, block], axis=1)
        nfe += stats.nfe
    return paths[:, :horizon], nfe


def rollout(
    forecaster,
    history: pd.DataFrame,
    plans: dict[str, pd.DataFrame],
    horizon: int | None = None,
    *,
    num_samples: int = 100,
    seed: int = 0,
    **sampler,
) -> Scenarios:
    """Sample ``num_samples`` futures of every item in ``history`` under every plan.

    Args:
        forecaster: a fitted :class:`tsdiff.Forecaster` trained with ``future_covariates``.
        history: long frame (as for ``predict``) ending at the rollout origin.
        plans: plan name -> long frame (item_id, timestamp, every future covariate) covering the
            ``horizon`` steps after each item's history.
        horizon: rollout length (default prediction_length); longer horizons append blocks.
        **sampler: overrides of the forecaster's sampler options (``temperature``, ``steps``, ...)
            and ``spread``: the centre-preserving spread factor applied to each plan's finished
            paths (default: the forecaster's fitted one; blocks are generated unwidened, and
            plan means, hence effects, do not depend on it).

    Returns:
        :class:`Scenarios` with samples[item] of shape [A, S, horizon, C].

    Raises:
        tsdiff.support.UnsupportedPlanError: a plan sets an action that never varied in the
            training data (its effect cannot be estimated). A plan outside the seen values or hold
            lengths warns (:class:`tsdiff.support.ExtrapolationWarning`) and is marked in
            :attr:`Scenarios.extrapolated` and ``summary()``.
    """
    forecaster._check_fitted()
    c, cols = forecaster.config, forecaster.columns
    horizon = horizon or c.prediction_length
    spread = sampler.pop("spread", forecaster.spread)
    if not isinstance(plans, dict) or not plans:
        raise DataError("plans: expected a non-empty dict of plan name -> frame")
    if not cols.future_covariates:
        raise DataError("plans: this model has no future covariates (actions) to set")
    series = forecaster._series(history)
    known = {s.item_id for s in series}
    for name, frame in plans.items():
        extra = set(frame[cols.item_id].astype(str)) - known if cols.item_id in frame else set()
        if extra:
            raise DataError(f"plan {name!r}: items {sorted(extra)} are not in the history")
    blocks = {
        name: [future_block(s, frame, cols, horizon, c.freq, what=f"plan {name!r}") for s in series]
        for name, frame in plans.items()
    }  # plan -> [horizon, Cf] per item
    support = forecaster.history.get("covariate_support", {})
    extrapolated = check_plans(support, cols.future_covariates, blocks)
    samples, starts, nfe = {}, {}, 0
    for i, s in enumerate(series):
        per_plan = []
        for name in plans:
            fcov = blocks[name][i]
            paths, nfe = _rollout_one(forecaster, s, fcov, horizon, num_samples, seed, sampler)
            # around this plan's own mean, inside the domain
            per_plan.append(widen(paths, spread, axis=0, bounds=forecaster.bounds))
        samples[s.item_id] = np.stack(per_plan)
        starts[s.item_id] = extend(
            s, np.zeros((1, len(cols.future_covariates)), np.float32), c.freq, forecaster.calendar
        ).index[-1]
    return Scenarios(samples, list(plans), list(cols.targets), starts, nfe, extrapolated)
