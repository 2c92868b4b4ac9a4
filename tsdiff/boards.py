"""tsdiff as a model of the ``fev`` evaluation package (fev-bench, GIFT-Eval and the like).

    >>> tasks = load_tasks("tasks.yaml")                          # doctest: +SKIP
    >>> summary = evaluate_task(tasks[0], "base")                 # doctest: +SKIP
    >>> summary["test_error"], summary["WQL"]                     # doctest: +SKIP

A task file is fev's benchmark YAML: ``tasks:``, a list of :class:`fev.Task` fields
(``dataset_path``, ``dataset_config``, ``horizon``, ``num_windows``, ``seasonality``,
``eval_metric``, ``quantile_levels``, ``target``, ``known_dynamic_columns`` ...). A local
``dataset_path`` (a ``.parquet`` / ``.arrow`` file in fev's format, one row per series with the
time-varying columns as sequences, or a long table) is read relative to the YAML's folder; a hub
``dataset_config`` is read from ``$FEV_DATASETS_PREFIX/<config>/*.parquet`` when that is set, else
from the Hugging Face cache (``HF_DATASETS_OFFLINE=1`` keeps it offline).

For every evaluation window fev hands over the past (targets and covariates up to the cutoff) and
the known future covariates; they become tsdiff long frames (:func:`window_frames`), the
forecaster samples paths ``[N, S, H, C]`` and :func:`to_predictions` turns them into fev's
per-target ``datasets.Dataset`` of ``"predictions"`` (the median, or mean) and one column per
quantile level. ``task.evaluation_summary`` scores them.

Models (``model``): ``"base"`` the packaged pretrained forecaster, zero-shot
(``Forecaster.from_pretrained``); ``"scratch"`` a forecaster trained per task on the first
window's past (no later window's future is in it) within ``budget_s``; ``"finetune"`` the same
fit started from the base (``fit(df, init="base")``); any other value is a folder written by
``Forecaster.save`` / ``tsdiff fit``. ``factory`` replaces that choice (tests, other setups).
Known dynamic columns are future covariates, past dynamic columns past covariates (numeric ones;
a saved model reads those it was trained with); static columns are not used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fev
import pandas as pd
import yaml

from lm_core.outputs import one_line
from tsdiff.board_windows import (
    ITEM,
    TIME,
    merge_univariate,
    predict_window,
    task_name,
    to_predictions,
    to_univariate,
    window_frames,
)
from tsdiff.forecaster import Forecaster

MODELS = ("base", "scratch", "finetune")


@dataclass
class Fitted:
    """A forecaster ready for one task, and how it came to be (for fev's summary)."""

    forecaster: object
    trained_on_this_dataset: bool
    training_time_s: float = 0.0


Factory = Callable[[fev.Task, pd.DataFrame, list[str]], Fitted]


def load_tasks(path: str | Path) -> list[fev.Task]:
    """The :class:`fev.Task` list of a fev benchmark YAML (``tasks: [{...}, ...]``).

    Relative local ``dataset_path`` values are taken from the YAML's folder. A missing file, bad
    YAML or a task fev rejects: one ValueError / FileNotFoundError line naming file and task."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"tasks: no such file {str(p)!r}")
    try:
        config = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"tasks: {str(p)!r} is not valid YAML ({one_line(e)})") from None
    entries = config.get("tasks") if isinstance(config, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"tasks: {str(p)!r}: expected a non-empty list under the key 'tasks'")
    tasks = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"tasks: {str(p)!r}: tasks[{i}]: expected a mapping of Task fields")
        entry = dict(entry)
        written = entry.get("dataset_path")
        local = entry.get("dataset_config") is None and isinstance(written, str)
        relative = local and "://" not in written and not Path(written).is_absolute()
        if relative:
            entry.setdefault("task_name", "/".join(Path(written).parts[-3:-1]) or None)
            entry["dataset_path"] = str(p.parent / written)
        try:
            task = fev.Task(**entry)
        except (ValueError, TypeError, AssertionError) as e:
            raise ValueError(f"tasks: {str(p)!r}: tasks[{i}]: {_short(e)}") from None
        if relative:  # the summaries name the path as written, so runs elsewhere compare
            task._written_dataset_path = written
        tasks.append(task)
    return tasks


def _short(e: BaseException) -> str:
    """One line of an fev / pydantic error (pydantic's first error: field and message)."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "Task"
        return f"{where}: {first.get('msg', one_line(e))}"
    return one_line(e) if str(e) else "invalid task (fev assertion failed)"


def load_task_data(task: fev.Task, num_proc: int = 1) -> None:
    """Load (and cache in the task) its data set; fev's load failures in one ValueError line."""
    if task.dataset_config is None and "://" not in task.dataset_path:
        if not Path(task.dataset_path).is_file():
            raise FileNotFoundError(
                f"task {task_name(task)!r}: dataset_path: no such file {task.dataset_path!r}"
            )
    try:
        task.load_full_dataset(num_proc=_procs(num_proc))
    except (RuntimeError, ValueError, OSError) as e:
        hint = ""
        if task.dataset_config is not None:
            hint = (
                "; offline it is read from $FEV_DATASETS_PREFIX/<dataset_config>/*.parquet "
                "or the Hugging Face cache"
            )
        cause = e.__context__ if isinstance(e, RuntimeError) and e.__context__ else e
        raise ValueError(
            f"task {task_name(task)!r}: cannot load its data ({one_line(cause)}){hint}"
        ) from None


def _procs(num_proc: int) -> int:
    """fev's ``num_proc`` for ``datasets.map``: 0 keeps the work in this process (datasets 4
    starts a pool even for 1)."""
    return num_proc if num_proc > 1 else 0


def _numeric(df: pd.DataFrame, names: list[str]) -> list[str]:
    return [c for c in names if c in df.columns and pd.api.types.is_numeric_dtype(df[c])]


def scratch_frame(past: pd.DataFrame, task: fev.Task) -> pd.DataFrame:
    """The training frame of a per-task fit: items with more than H steps (tsdiff's minimum)."""
    sizes = past.groupby(ITEM)[TIME].transform("size")
    frame = past[sizes > task.horizon]
    if frame.empty:
        raise ValueError(
            f"task {task_name(task)!r}: no series has more than horizon={task.horizon} steps "
            "before the first cutoff; a per-task fit needs longer series (use --model base)"
        )
    return frame


def default_factory(
    model: str,
    budget_s: float = 60.0,
    options: dict | None = None,
    seed: int = 0,
    folder_trained_on_tasks: bool = False,
) -> Factory:
    """The forecaster of ``model`` (see the module doc) for each task:
    ``(task, past, targets) -> Fitted``.

    ``past``: the first window's past frame (:func:`window_frames`; :func:`to_univariate`'s
    with ``univariate``), ``targets`` its target columns. ``options``: more
    :class:`Forecaster` settings for ``scratch`` / ``finetune`` (``d_model``, ``n_layers`` ...).
    ``folder_trained_on_tasks``: what fev's summaries say of a saved folder's model (whether it
    saw these data sets; fev's leaderboard flags such rows)."""
    options = dict(options or {})
    if model not in MODELS and not Path(model).is_dir():
        raise ValueError(
            f"model: expected one of {list(MODELS)} or a saved forecaster folder, got {model!r}"
        )

    def make(task: fev.Task, past: pd.DataFrame, targets: list[str]) -> Fitted:
        H, freq = task.horizon, task.freq
        if model == "base":
            return Fitted(Forecaster.from_pretrained(prediction_length=H, freq=freq), False)
        if model not in MODELS:
            return Fitted(Forecaster.load(model), folder_trained_on_tasks)
        start = time.monotonic()
        settings = {
            "prediction_length": H,
            "freq": freq,
            "max_time_s": budget_s,
            "seed": seed,
            "future_covariates": _numeric(past, task.known_dynamic_columns),
            "past_covariates": _numeric(past, task.past_dynamic_columns),
            **options,
        }
        f = Forecaster(**settings)
        frame = scratch_frame(past, task)
        cols = [ITEM, TIME, *targets]
        cols += settings["past_covariates"] + settings["future_covariates"]
        fit_kwargs = {"target": list(targets)}
        if model == "finetune":
            fit_kwargs["init"] = "base"
        try:
            f.fit(frame[cols], **fit_kwargs)
        except TypeError as e:
            if "init" not in fit_kwargs:
                raise
            raise ValueError(
                f"model 'finetune': Forecaster.fit does not take init='base' here ({one_line(e)})"
            ) from None
        return Fitted(f, True, time.monotonic() - start)

    return make


def evaluate_task(
    task: fev.Task,
    model: str = "base",
    *,
    factory: Factory | None = None,
    num_samples: int = 100,
    point: str = "median",
    seed: int = 0,
    budget_s: float = 60.0,
    options: dict | None = None,
    model_name: str | None = None,
    num_proc: int = 1,
    univariate: bool = False,
) -> dict:
    """fev's evaluation summary of ``model`` on every window of ``task`` (a dict: ``test_error``
    in the task's eval_metric, each extra metric, times, the task's fields).

    ``univariate``: forecast every target of the task as its own series (one-target model);
    the default forecasts the task's targets jointly, as channels of one series."""
    make = factory or default_factory(model, budget_s, options, seed)
    load_task_data(task, num_proc)
    frames = []
    for window in task.iter_windows(num_proc=_procs(num_proc)):
        past, future, ids = window_frames(window)
        targets = task.target_columns
        if univariate:
            past, future, name = to_univariate(past, future, targets)
            targets = [name]
        frames.append((past, future, ids, targets))
    fitted = make(task, frames[0][0], frames[0][3])
    start = time.monotonic()
    predictions = []
    for k, (past, future, ids, targets) in enumerate(frames):
        fc = predict_window(fitted.forecaster, task, past, future, num_samples, seed + k, targets)
        if univariate:
            fc = merge_univariate(fc, ids, task.target_columns)
        predictions.append(to_predictions(fc, task, ids, point))
    inference = time.monotonic() - start
    name = model_name or f"tsdiff-{model if model in MODELS else Path(model).name}"
    try:
        summary = task.evaluation_summary(
            predictions,
            model_name=name,
            training_time_s=fitted.training_time_s,
            inference_time_s=inference,
            trained_on_this_dataset=fitted.trained_on_this_dataset,
            extra_info={
                "num_samples": num_samples,
                "point_forecast": point,
                "univariate": univariate,
            },
        )
    except (ValueError, AssertionError) as e:
        raise ValueError(
            f"task {task_name(task)!r}: fev rejected the predictions ({_short(e)})"
        ) from None
    summary["dataset_path"] = getattr(task, "_written_dataset_path", task.dataset_path)
    return summary


__all__ = [
    "MODELS",
    "Fitted",
    "default_factory",
    "evaluate_task",
    "load_task_data",
    "load_tasks",
    "scratch_frame",
]
