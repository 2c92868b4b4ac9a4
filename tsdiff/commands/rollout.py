"""``tsdiff rollout``: many futures per candidate action plan, with common random numbers.

    tsdiff rollout --ckpt DIR --history FILE --plans FILE --horizon 96 --output rollouts.csv \
        [--num-samples 100] [--reference PLAN] [--plots DIR]

``--plans`` is a long frame with a ``plan`` column, the item id and timestamp columns, and every
known-future covariate of the model (the actions and, e.g., weather forecasts) for the
``--horizon`` steps after each item's history. ``--output`` gets one row per (plan, item, step)
with mean and 10/50/90 % quantiles per target. The printed table gives, per item and plan, the
horizon mean, its quantiles and the effect against ``--reference`` (default: the first plan)
with a 90 % interval; ``--plots`` writes one comparison figure per item (every plan's fan chart).
A plan that sets an action which never varied in training is refused (one line); a plan beyond
the values or hold lengths seen in training prints a ``warning:`` line per column and is marked
``extrapolated`` in the table (tsdiff.support).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lm_core.outputs import ensure_writable
from tsdiff.commands.io import (
    check_output,
    check_writable_file,
    load_forecaster,
    read_frame,
    write_frame,
)
from tsdiff.plots import scenario_chart
from tsdiff.scenarios import rollout
from tsdiff.support import ExtrapolationWarning


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsdiff rollout", description=__doc__.splitlines()[0])
    p.add_argument(
        "--ckpt", required=True, help="checkpoint directory trained with future covariates"
    )
    p.add_argument("--history", required=True, help="long frame ending at the rollout origin")
    p.add_argument(
        "--plans", required=True, help="long frame: plan, item id, timestamp, future covariates"
    )
    p.add_argument(
        "--horizon", type=int, required=True, help="steps to roll out (blocks appended past H)"
    )
    p.add_argument("--output", required=True, help="mean and quantiles per plan, item and step")
    p.add_argument("--num-samples", type=int, default=100, help="paths per plan (default 100)")
    p.add_argument("--reference", default=None, help="plan the effects are measured against")
    p.add_argument("--plan-column", default="plan", help="column naming the plan (default plan)")
    p.add_argument("--plots", default=None, help="directory for one comparison PNG per item")
    p.add_argument("--seed", type=int, default=0, help="seed shared by every plan (default 0)")
    return p


def _plans(frame: pd.DataFrame, column: str) -> dict[str, pd.DataFrame]:
    if column not in frame.columns:
        raise ValueError(f"--plans: no {column!r} column; it has {list(frame.columns)}")
    return {str(name): g.drop(columns=[column]) for name, g in frame.groupby(column, sort=False)}


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.horizon < 1:
        raise ValueError(f"--horizon: expected a positive integer, got {a.horizon}")
    if a.num_samples < 1:
        raise ValueError(f"--num-samples: expected a positive integer, got {a.num_samples}")
    check_writable_file(check_output(a.output))  # outputs checked before any sampling
    if a.plots:
        ensure_writable(a.plots)
    f = load_forecaster(a.ckpt)
    history = read_frame(a.history)
    plans = _plans(read_frame(a.plans), a.plan_column)
    reference = a.reference or next(iter(plans))
    if reference not in plans:
        raise ValueError(f"--reference: unknown plan {reference!r}; plans are {list(plans)}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        sc = rollout(f, history, plans, a.horizon, num_samples=a.num_samples, seed=a.seed)
    for w in caught:
        if issubclass(w.category, ExtrapolationWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    rows, tables = [], []
    for item, x in sc.samples.items():  # x [A, S, horizon, C]
        steps = pd.date_range(sc.starts[item], periods=a.horizon, freq=f.config.freq)
        for i, name in enumerate(sc.plans):
            d = {"plan": name, "item_id": item, "timestamp": steps}
            for c, target in enumerate(sc.targets):
                d[f"{target}_mean"] = x[i, :, :, c].mean(0)
                for q in (0.1, 0.5, 0.9):
                    d[f"{target}_q{q:g}"] = np.quantile(x[i, :, :, c], q, axis=0)
            rows.append(pd.DataFrame(d))
        t = sc.summary(reference=reference, item=item)
        t.insert(0, "item_id", item)
        tables.append(t)
        if a.plots:
            hist = history[history[f.columns.item_id].astype(str) == item][sc.targets]
            scenario_chart(
                hist.to_numpy()[-3 * f.config.prediction_length :], x, sc.plans,
                Path(a.plots) / f"rollout_{item}.png", title=f"{item}: plans vs {reference}",
                origin=sc.starts[item], freq=f.config.freq,
            )  # fmt: skip
    write_frame(pd.concat(rows, ignore_index=True), a.output)
    print(
        f"rollouts: {len(sc.plans)} plans x {a.num_samples} paths x {a.horizon} steps, NFE/path {sc.nfe}"
    )
    print(f"effects are horizon means of {sc.targets[0]} against {reference!r} (90 % interval)")
    print(
        pd.concat(tables, ignore_index=True).to_string(
            index=False, float_format=lambda v: f"{v:.4g}"
        )
    )
    print(f"wrote {a.output}")
    return 0
