"""``make demo``: forecast the embedded TMY3 Greensboro weather year, backtest, and compare.

Trains tsdiff for a fixed number of optimiser steps (about two minutes on a 2-core CPU; a
time cap stops a slow machine earlier and says so) on hourly data before 2001-12-04 (5 channels:
ghi, dni, temp_air, relative_humidity, wind_speed), then backtests 28 daily windows
(horizon 24 h, context 168 h, origins at midnight 2001-12-04 .. 2001-12-31) with 100 sample
paths each, beside seasonal naive (24 h) and ETS(A,Ad,A) (statsmodels) on the same windows
(:mod:`tsdiff.baselines`). Settings not given here (channel mode, context patching, sampler) are
the library's defaults; relative humidity is bounded to [0, 100] and the other channels get the
automatic domain (non-negative where the training data is), so no path leaves where the data
lives. About 2 minutes on a 2-core CPU (fit with calibration and the final phase on all of the
history, then sampling). Prints the metric table and writes a fan chart (dated x-axis) and a PIT
histogram under ``demo_out/``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tsdiff.baselines import ets_samples, seasonal_naive_samples
from tsdiff.data.datasets import load_tmy3, load_tmy3_benchmark
from tsdiff.forecaster import Forecaster
from tsdiff.metrics import evaluate_samples
from tsdiff.plots import fan_chart, pit_histogram

CHANNELS = ["ghi", "dni", "temp_air", "relative_humidity", "wind_speed"]
H, CTX, WINDOWS = 24, 168, 28
FIRST_ORIGIN = pd.Timestamp("2001-12-04")
STEPS = 600  # a step budget, not a time budget, so that the demo's figures do not move with load


def peer_rows(bt: dict) -> list[tuple[str, np.ndarray, float]]:
    """Seasonal naive (24 h) and ETS(A,Ad,A) on the backtest's windows: (name, samples
    [N, 100, H, C], seconds)."""
    naive = seasonal_naive_samples(bt["insample"], H, 24).astype(bt["insample"][0].dtype)
    rows = [("seasonal naive", np.broadcast_to(naive, (len(naive), 100, H, len(CHANNELS))), 0.0)]
    try:  # statsmodels comes with the `bench` extra
        bdf, proto = load_tmy3_benchmark(CHANNELS)
        t0 = time.perf_counter()
        samples, _, _ = ets_samples(bdf, proto, n_samples=100, max_fit_length=24 * 56)
        rows.append(("ETS(A,Ad,A)", samples, time.perf_counter() - t0))
    except ImportError as e:
        print(f"(ETS skipped: {e})")
    return rows


def table(rows: list[tuple[str, dict, str]]) -> str:
    cols = ["crps", "wql", "energy_score", "cov50", "cov90", "calibration_error"]
    head = f"{'model':<16}" + "".join(f"{c:>18}" for c in cols) + f"{'NFE/path':>10}{'seconds':>10}"
    lines = [head, "-" * len(head)]
    for name, m, nfe, sec in rows:
        lines.append(
            f"{name:<16}" + "".join(f"{m[c]:>18.4f}" for c in cols) + f"{nfe:>10}{sec:>10.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--steps", type=int, default=STEPS, help="training steps (the reference figures)"
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=300.0,
        help="training time cap (a slow machine stops early)",
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="where PNGs and the model go")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    df = load_tmy3()[["item_id", "timestamp", *CHANNELS]]
    train = df[df.timestamp < FIRST_ORIGIN]
    print(f"TMY3 Greensboro (NREL, via pvlib): {len(df)} hourly rows, channels {CHANNELS}")
    print(
        f"training on {len(train)} rows before {FIRST_ORIGIN.date()} for {args.steps} steps "
        f"(cap {args.seconds:.0f} s)"
    )
    f = Forecaster(
        prediction_length=H,
        context_length=CTX,
        freq="h",
        d_model=96,
        n_layers=3,
        batch_size=32,
        max_steps=args.steps,
        max_time_s=args.seconds,
        lr=2e-3,
        domain={"relative_humidity": [0, 100]},  # the others auto: ghi, dni, wind speed >= 0
    )
    t0 = time.perf_counter()
    f.fit(train, target=CHANNELS)
    fit_s = time.perf_counter() - t0
    print(
        f"trained {f.history['steps']} steps in {fit_s:.0f} s; sampling temperature {f.temperature}"
    )
    if f.history["steps"] < args.steps:
        print(
            f"(stopped by the {args.seconds:.0f} s cap: the figures below are not the reference's)"
        )
    t0 = time.perf_counter()
    bt = f.backtest(df, windows=WINDOWS, num_samples=100)
    pred_s = time.perf_counter() - t0
    assert bt["origins"][0] == FIRST_ORIGIN, bt["origins"][0]
    rows = [("tsdiff", evaluate_samples(bt["samples"], bt["y"]), bt["nfe"], pred_s)]
    for name, samples, sec in peer_rows(bt):
        rows.append((name, evaluate_samples(samples, bt["y"]), 1, sec))
    print(
        f"\nBacktest: {WINDOWS} daily windows, horizon {H} h, 100 paths; CRPS = sum CRPS / sum |y|"
    )
    print(table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    k = WINDOWS - 1
    fan = fan_chart(
        bt["insample"][k][-72:], bt["samples"][k], args.out / "fan_chart.png",
        truth=bt["y"][k], names=CHANNELS, title=f"tsdiff, origin {bt['origins'][k]}",
        origin=bt["origins"][k], freq="h",
    )  # fmt: skip
    pit = pit_histogram(rows[0][1]["pit"], args.out / "pit_histogram.png", title="tsdiff PIT")
    f.save(args.out / "tmy3_model")
    print(f"\nwrote {fan}, {pit} and {args.out / 'tmy3_model'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
