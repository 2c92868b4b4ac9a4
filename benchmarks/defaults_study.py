"""``Forecaster(prediction_length=H, freq=F)`` with nothing else, on real sets at a fixed budget.

One run = one data set x one variant; prints its row and writes it into
``benchmarks/results/defaults_study.csv`` (keyed by data, variant and seed: a rerun replaces its
row and keeps the others; ``--out DIR`` writes there instead):

- ``default``: this branch's defaults (settings decided from the data, the final phase of
  ``ForecasterConfig.final_phase``: continue), ``max_time_s`` = ``--budget`` for the whole fit;
- ``continue`` / ``refit`` / ``none``: the same with that ``final_phase`` (issue 20: which way
  of training the final model on the held-out horizons is better);
- ``main``: run with ``PYTHONPATH`` at a checkout of main: its defaults, its ``max_time_s``
  (which capped training only; calibration ran after).

Protocol: benchmarks.datasets' (window_splits: training rows before each item's first test
origin; the test windows backtested with ``--samples`` paths, seed 0). Target channels only, no
covariates (what a new user's first call does). Scores: wQL (q = 0.1 ... 0.9) and normalised
CRPS, coverage 90; fit seconds (wall-clock, the whole ``fit``)::

    python -m benchmarks.defaults_study --data elecdemand --variant default --budget 120
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, write_csv
from benchmarks.datasets import load, window_splits
from tsdiff.forecaster import Forecaster
from tsdiff.metrics import evaluate_samples

VARIANTS = ("default", "continue", "refit", "none", "main")


def run(name: str, variant: str, budget: float, seed: int = 0, samples: int = 100) -> dict:
    df, proto = load(name)
    cols = ["item_id", "timestamp", *proto.target_columns]
    df = df[cols]
    train, _ = window_splits(df, proto)
    kw = dict(prediction_length=proto.prediction_length, freq=proto.freq, max_time_s=budget)
    kw.update(progress=False, seed=seed)
    if variant in ("continue", "refit", "none"):
        kw["final_phase"] = variant
    f = Forecaster(**kw)
    t0 = time.perf_counter()
    f.fit(train, target=list(proto.target_columns))
    fit_s = time.perf_counter() - t0
    if proto.test_origins:
        bt = f.backtest(df, origins=list(proto.test_origins), num_samples=samples, seed=0)
    else:
        bt = f.backtest(df, windows=proto.n_test_windows, num_samples=samples, seed=0)
    s = evaluate_samples(bt["samples"], bt["y"])
    c = f.config
    return {
        "data": name,
        "variant": variant,
        "budget_s": budget,
        "fit_s": round(fit_s, 1),
        "steps": f.history["steps"],
        "timings": getattr(f, "timings", {}),
        "phases": [(p["phase"], p["steps"]) for p in f.history.get("phases", [])],
        "temperature": f.temperature,
        "wql": round(s["wql"], 4),
        "crps": round(s["crps"], 4),
        "cov90": round(s["cov90"], 3),
        "windows": len(bt["items"]),
        "samples": samples,
        "config": {k: getattr(c, k) for k in ("context_length", "patch_size", "channels",
                                              "d_model", "n_layers", "batch_size", "max_steps")},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--variant", choices=VARIANTS, default="default")
    p.add_argument("--budget", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=100, help="paths per test window")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of defaults_study.csv")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    row = run(args.data, args.variant, args.budget, args.seed, args.samples)
    print(json.dumps(row), flush=True)
    flat = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
    write_csv(
        args.out, "defaults_study", [{**flat, "seed": args.seed}], key=("data", "variant", "seed")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
