"""``tsdiff board``: score tsdiff on fev tasks (fev-bench, GIFT-Eval, your own) in one command.

    tsdiff board --tasks tasks.yaml --model base --output results.csv
    tsdiff board --tasks tasks.yaml --model scratch --budget-s 60 --output scratch.csv
    python -m tsdiff.fev --tasks tasks.yaml --model runs/my-forecaster --output mine.csv

``--tasks``: fev's benchmark YAML (``tasks:`` then one mapping of :class:`fev.Task` fields per
task; a relative local ``dataset_path`` is read from the YAML's folder; hub configs come from
``$FEV_DATASETS_PREFIX/<config>/*.parquet`` or the Hugging Face cache, offline with
``HF_DATASETS_OFFLINE=1``). ``--model``: ``base`` (pretrained, zero-shot), ``scratch`` (trained
per task within ``--budget-s``), ``finetune`` (the same, started from the base) or a saved
forecaster folder. ``--output`` gets fev's evaluation summary, one row per task (``test_error``
in the task's metric, extra metrics, times, task fields), rewritten whole after every task; read
it with ``fev.leaderboard`` beside other models' summaries.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields

import pandas as pd
import yaml

from tsdiff.commands.io import check_counts, check_output, check_writable_file, write_frame
from tsdiff.config import ForecasterConfig

MODELS = "base, scratch, finetune"  # tsdiff.boards.MODELS, named here so --help needs no fev


def load_boards():
    """:mod:`tsdiff.boards`, which needs the optional ``fev`` package: one line when it is absent."""
    try:
        from tsdiff import boards  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    except ImportError as e:
        missing = getattr(e, "name", None) or "fev"
        raise ValueError(
            f"the fev package is needed (missing module {missing!r}); install tsdiff's 'fev' "
            "extra: pip install 'tsdiff[fev]'"
        ) from None
    return boards


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsdiff board", description=__doc__.splitlines()[0])
    p.add_argument("--tasks", required=True, help="fev benchmark YAML (a 'tasks:' list)")
    p.add_argument(
        "--model",
        default="base",
        help=f"one of {MODELS} or a saved forecaster folder (default base)",
    )
    p.add_argument("--output", required=True, help="one summary row per task (.csv or .parquet)")
    p.add_argument(
        "--num-samples", type=int, default=100, help="sample paths per series (default 100)"
    )
    p.add_argument(
        "--point",
        choices=("median", "mean"),
        default="median",
        help="point forecast fev scores as 'predictions' (default median)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of fitting and sampling (default 0)")
    p.add_argument(
        "--budget-s",
        type=float,
        default=60.0,
        help="training seconds per task for scratch / finetune (default 60)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Forecaster setting for scratch / finetune, e.g. --set d_model=64 (repeatable)",
    )
    p.add_argument(
        "--univariate",
        action="store_true",
        help="forecast each target of a multivariate task as its own series",
    )
    p.add_argument(
        "--trained-on-tasks",
        action="store_true",
        help="a saved folder's model saw these data sets (fev's summaries say so)",
    )
    p.add_argument("--model-name", default=None, help="name in the summaries (default tsdiff-<m>)")
    p.add_argument(
        "--num-proc", type=int, default=1, help="processes fev uses to load data (default 1)"
    )
    return p


def parse_settings(pairs: list[str]) -> dict:
    """``["d_model=64", "calibrate=false"]`` -> ``{"d_model": 64, "calibrate": False}``."""
    known = {f.name for f in fields(ForecasterConfig)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set: expected KEY=VALUE, got {pair!r}")
        if key not in known:
            raise ValueError(f"--set: unknown Forecaster setting {key!r}; known: {sorted(known)}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"--set: cannot read the value of {key!r}: {value!r}") from None
    return out


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    check_counts(a.num_samples, 1)
    if a.budget_s <= 0:
        raise ValueError(f"--budget-s: expected a positive number of seconds, got {a.budget_s}")
    if a.num_proc < 1:
        raise ValueError(f"--num-proc: expected a positive integer, got {a.num_proc}")
    options = parse_settings(a.set)
    boards = load_boards()
    factory = boards.default_factory(a.model, a.budget_s, options, a.seed, a.trained_on_tasks)
    out = check_writable_file(check_output(a.output))
    tasks = boards.load_tasks(a.tasks)
    rows = []
    for k, task in enumerate(tasks):
        start = time.monotonic()
        summary = boards.evaluate_task(
            task,
            a.model,
            factory=factory,
            num_samples=a.num_samples,
            point=a.point,
            seed=a.seed,
            model_name=a.model_name,
            num_proc=a.num_proc,
            univariate=a.univariate,
        )
        rows.append(summary)
        write_frame(pd.DataFrame(rows), out)
        metric = summary["eval_metric"]
        metric = metric["name"] if isinstance(metric, dict) else metric
        print(
            f"[{k + 1}/{len(tasks)}] {boards.task_name(task)}: {metric} {summary['test_error']:.4f} "
            f"({task.num_windows} window(s), {time.monotonic() - start:.1f} s)",
            flush=True,
        )
    print(f"wrote {out}: {len(rows)} task(s), model {rows[0]['model_name']}")
    return 0


__all__ = ["build_parser", "load_boards", "main", "parse_settings"]
