"""fev's evaluation windows as tsdiff frames, and tsdiff's sample paths as fev's predictions.

fev hands each window over as ``datasets.Dataset`` rows, one per series, with the time-varying
columns as sequences; tsdiff reads long frames (``item_id``, ``timestamp``, targets, covariates;
tsdiff.data.frames). :func:`window_frames` converts one way, :func:`to_predictions` the other:
paths ``[N, S, H, C]`` -> one ``datasets.Dataset`` per target with ``"predictions"`` and a
column per quantile level. :func:`to_univariate` / :func:`merge_univariate` forecast every
target of a multivariate task as its own series (for a model of fewer channels).
"""

from __future__ import annotations

import inspect

import datasets
import fev
import numpy as np
import pandas as pd
from fev.adapters import PandasAdapter

from tsdiff.forecast import Forecast

POINTS = ("median", "mean")
ITEM, TIME = "item_id", "timestamp"
SEP = "\x1f"  # joins an item id and a target name in univariate mode (never in real ids)


def task_name(task: fev.Task) -> str:
    return str(task.task_name or task.dataset_config or task.dataset_path)


def window_frames(
    window: fev.EvaluationWindow,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """fev's input of one window as tsdiff long frames.

    Returns ``(past, future, ids)``: ``past`` one row per (item, step) up to the cutoff with
    ``item_id``, ``timestamp``, the targets and the dynamic covariates; ``future`` the H rows
    per item after it with the known covariates; ``ids`` the item order fev scores in."""
    past_ds, future_ds = window.get_input_data()
    ids = [str(i) for i in past_ds[window.id_column]]
    past, future, _static = PandasAdapter.convert_input_data(
        past_ds,
        future_ds,
        target_columns=window.target_columns,
        id_column=window.id_column,
        timestamp_column=window.timestamp_column,
        static_columns=window.static_columns,
    )  # static columns are not used (yet)
    rename = {window.id_column: ITEM, window.timestamp_column: TIME}
    past, future = past.rename(columns=rename), future.rename(columns=rename)
    past[ITEM] = past[ITEM].astype(str)
    future[ITEM] = future[ITEM].astype(str)
    return past, future, ids


def to_univariate(
    past: pd.DataFrame, future: pd.DataFrame, targets: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Every (item, target) of :func:`window_frames`' frames as its own one-target item
    ``f"{item}{SEP}{target}"`` with the item's covariates; returns ``(past, future, name)``,
    ``name`` the one target column (``"target"``, unless a covariate is called so)."""
    covs = [c for c in past.columns if c not in (ITEM, TIME, *targets)]
    name = "target" if "target" not in covs else "_target"
    pasts, futures = [], []
    for t in targets:
        part = past[[ITEM, TIME, t, *covs]].rename(columns={t: name})
        part[ITEM] = part[ITEM] + SEP + t
        pasts.append(part)
        fut = future.copy()
        fut[ITEM] = fut[ITEM] + SEP + t
        futures.append(fut)
    return pd.concat(pasts, ignore_index=True), pd.concat(futures, ignore_index=True), name


def merge_univariate(fc: Forecast, ids: list[str], targets: list[str]) -> Forecast:
    """The inverse of :func:`to_univariate` for forecasts: paths [N * C, S, H, 1] of the items
    ``f"{item}{SEP}{target}"`` -> [N, S, H, C] of ``ids`` (in that order) and ``targets``."""
    pos = {str(item): i for i, item in enumerate(fc.item_ids)}
    lost = [f"{i}/{t}" for i in ids for t in targets if f"{i}{SEP}{t}" not in pos]
    if lost:
        raise ValueError(f"no forecast for item(s)/target(s) {lost[:5]}")
    samples = np.stack(
        [np.stack([fc.samples[pos[f"{i}{SEP}{t}"], :, :, 0] for t in targets], -1) for i in ids]
    )  # [N, S, H, C]
    starts = [fc.starts[pos[f"{i}{SEP}{targets[0]}"]] for i in ids]
    return Forecast(samples, list(ids), starts, fc.freq, list(targets), fc.nfe)


def _model_columns(
    f, task: fev.Task, task_targets: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """(targets the forecaster reads in the frame, its past covariates, its future covariates)."""
    cfg = getattr(f, "config", None)
    past_cov = list(getattr(cfg, "past_covariates", []) or [])
    fut_cov = list(getattr(cfg, "future_covariates", []) or [])
    cols = getattr(f, "columns", None)
    model_targets = list(getattr(cols, "targets", []) or [])
    if not model_targets or sorted(model_targets) == sorted(task_targets):
        return task_targets, past_cov, fut_cov
    if len(model_targets) == len(task_targets) == 1:
        return model_targets, past_cov, fut_cov
    raise ValueError(
        f"task {task_name(task)!r}: the model forecasts {model_targets}, the task asks for "
        f"{task_targets} (a model for {len(task_targets)} target channel(s) is needed, "
        "or forecast each target alone: --univariate)"
    )


def _accepts(fn, name: str) -> bool:
    """Whether callable ``fn`` takes keyword ``name`` (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def predict_window(
    f,
    task: fev.Task,
    past: pd.DataFrame,
    future: pd.DataFrame,
    num_samples: int,
    seed: int,
    targets: list[str] | None = None,
) -> Forecast:
    """Sample the forecaster ``f`` on one window's frames; paths [N, S, H, C] with the target
    columns ``targets`` (default the task's) in that order, whatever a one-target model calls
    its target. The frame given to ``f`` holds the targets and the covariates ``f`` names."""
    task_targets = list(targets or task.target_columns)
    model_targets, past_cov, fut_cov = _model_columns(f, task, task_targets)
    rename = dict(zip(task_targets, model_targets, strict=True))
    past = past.rename(columns=rename)
    needed = past_cov + fut_cov
    missing = [c for c in needed if c not in past.columns]
    if missing:
        raise ValueError(
            f"task {task_name(task)!r}: the model needs covariate column(s) {missing}; the task "
            f"gives {task.dynamic_columns} (known_dynamic_columns / past_dynamic_columns)"
        )
    frame = past[[ITEM, TIME, *model_targets, *needed]]
    kwargs = {"num_samples": num_samples}
    if _accepts(f.predict, "seed"):  # a zero-shot predict may sample without a seed argument
        kwargs["seed"] = seed
    if fut_cov:
        missing = [c for c in fut_cov if c not in future.columns]
        if missing:
            raise ValueError(
                f"task {task_name(task)!r}: covariate(s) {missing} are not known over the "
                "horizon (list them in the task's known_dynamic_columns)"
            )
        kwargs["future"] = future[[ITEM, TIME, *fut_cov]]
    fc = f.predict(frame, **kwargs)
    order = [list(fc.targets).index(rename[t]) for t in task_targets]
    return Forecast(fc.samples[..., order], fc.item_ids, fc.starts, fc.freq, task_targets, fc.nfe)


def to_predictions(
    fc: Forecast, task: fev.Task, ids: list[str], point: str = "median"
) -> datasets.DatasetDict:
    """fev's predictions of one window from sample paths ``fc.samples`` [N, S, H, C].

    One ``datasets.Dataset`` per target column (rows in fev's item order ``ids``) with
    ``"predictions"`` (the paths' median or mean, [H] per row) and ``str(q)`` for each of the
    task's quantile levels (sample quantiles, so ordered in q). Float64, finite."""
    if point not in POINTS:
        raise ValueError(f"point: expected one of {list(POINTS)}, got {point!r}")
    H = task.horizon
    if fc.samples.ndim != 4 or fc.samples.shape[2] != H:
        raise ValueError(
            f"task {task_name(task)!r}: forecast paths of shape {fc.samples.shape}, "
            f"expected [items, samples, {H}, channels]"
        )
    pos = {str(item): i for i, item in enumerate(fc.item_ids)}
    lost = [i for i in ids if i not in pos]
    if lost:
        raise ValueError(f"task {task_name(task)!r}: no forecast for item(s) {lost[:5]}")
    samples = np.asarray(fc.samples, dtype=np.float64)[[pos[i] for i in ids]]  # [N, S, H, C]
    if not np.isfinite(samples).all():
        raise ValueError(f"task {task_name(task)!r}: the forecast has NaN or infinite values")
    centre = np.median(samples, axis=1) if point == "median" else samples.mean(axis=1)
    levels = list(task.quantile_levels)
    qs = np.quantile(samples, levels, axis=1) if levels else np.zeros((0, *centre.shape))
    out = {}
    for c, name in enumerate(task.target_columns):
        cols = {"predictions": centre[:, :, c]}
        cols.update({str(q): qs[k, :, :, c] for k, q in enumerate(levels)})
        feats = datasets.Features(
            {k: datasets.Sequence(datasets.Value("float64"), length=H) for k in cols}
        )
        out[name] = datasets.Dataset.from_dict({k: v.tolist() for k, v in cols.items()}, feats)
    return datasets.DatasetDict(out)


__all__ = [
    "ITEM",
    "POINTS",
    "SEP",
    "TIME",
    "merge_univariate",
    "predict_window",
    "task_name",
    "to_predictions",
    "to_univariate",
    "window_frames",
]
