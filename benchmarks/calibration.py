"""Which post-training calibration: temperature, spread or both, on the same trained model.

    python -m benchmarks.calibration --threads 1            # 3 seeds, ~5 min each on one thread
    python -m benchmarks.calibration --quick                # smoke run

Protocol: the demo's data and backtest (``tsdiff.demo``: embedded TMY3 Greensboro, 5 channels,
H 24, context 168, 28 daily windows from 2001-12-04; real data). One masked tsdiff model per seed
(d_model 96, 3 layers, batch 32, fixed ``--steps``) is trained once on the data before the first
origin; then each calibration of :mod:`tsdiff.calibration` is fitted on the same held-out
validation windows (carved from the end of the training part) and the same 28 windows are
backtested with 100 paths and the same seed:

- ``none``: temperature 1, spread 1 (the raw model);
- ``temperature``: softmax temperature by validation fair CRPS (the forecasting default);
- ``spread``: temperature 1, then the centre-preserving spread factor (keeps every cell's mean);
- ``both``: the temperature, then the spread factor at that temperature.

Scores (``tsdiff.metrics.evaluate_samples``): normalised CRPS, wQL, energy score of the joint
path, coverage of the central 50 / 90 % intervals, calibration error. Writes
``results/calibration.csv`` (one row per seed and calibration, then the means over seeds).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import base_parser, finish, print_header, setup_torch
from tsdiff import Forecaster
from tsdiff.data.datasets import load_tmy3
from tsdiff.demo import CHANNELS, CTX, FIRST_ORIGIN, WINDOWS, H
from tsdiff.metrics import evaluate_samples

MODES = ("none", "temperature", "spread", "both")
SCORES = ("crps", "wql", "energy_score", "cov50", "cov90", "calibration_error")


def main(argv=None) -> int:
    ap = base_parser(__doc__)
    ap.add_argument("--seeds", type=int, default=3, help="training seeds 0 .. N-1")
    ap.add_argument("--steps", type=int, default=1000, help="training steps per seed")
    args = ap.parse_args(argv)
    setup_torch(args.threads, args.device)
    seeds, steps = (1, 30) if args.quick else (args.seeds, args.steps)
    meta = print_header(
        "calibration",
        [
            f"real data: embedded TMY3 Greensboro, channels {CHANNELS}",
            f"H={H} L={CTX}; {WINDOWS} daily backtest windows from {FIRST_ORIGIN.date()}, 100 paths",
            f"masked tsdiff d_model 96, 3 layers, {steps} steps, seeds 0..{seeds - 1}",
            "calibrations fitted on the same validation windows: " + ", ".join(MODES),
        ],
        args,
    )
    df = load_tmy3()[["item_id", "timestamp", *CHANNELS]]
    train = df[df.timestamp < FIRST_ORIGIN]
    rows = []
    for seed in range(seeds):
        f = Forecaster(
            prediction_length=H, context_length=CTX, freq="h", d_model=96, n_layers=3,
            batch_size=32, max_steps=steps, lr=2e-3, seed=seed, progress=False, calibrate=True,
            calibration="temperature", accelerator="gpu" if args.device == "cuda" else "cpu",
        )  # fmt: skip
        t0 = time.perf_counter()
        f.fit(train, target=CHANNELS)
        print(
            f"seed {seed}: trained {f.history['steps']} steps in {time.perf_counter() - t0:.0f} s"
        )
        fitted = (f.temperature, f.spread)  # fit() already ran the temperature calibration
        for mode in MODES:
            if mode == "none":
                f.temperature, f.spread = 1.0, 1.0
            elif mode == "temperature":
                f.temperature, f.spread = fitted
            else:  # on the validation windows fit() held out of training
                f.recalibrate(train, mode)
            bt = f.backtest(df, windows=WINDOWS, num_samples=100, seed=seed)
            m = evaluate_samples(bt["samples"], bt["y"])
            row = {"seed": seed, "calibration": mode, "temperature": f.temperature,
                   "spread": f.spread, **{k: float(m[k]) for k in SCORES}}  # fmt: skip
            rows.append(row)
            print("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in row.items()), flush=True)  # fmt: skip
    for mode in MODES:
        mine = [r for r in rows if r["calibration"] == mode]
        rows.append({"seed": "mean", "calibration": mode,
                     **{k: float(np.mean([r[k] for r in mine]))
                        for k in ("temperature", "spread", *SCORES)}})  # fmt: skip
    means = {r["calibration"]: r for r in rows if r["seed"] == "mean"}
    notes = [
        f"mean over {seeds} seed(s), {mode} vs temperature: CRPS "
        f"{means[mode]['crps'] / means['temperature']['crps']:.3f}x, energy "
        f"{means[mode]['energy_score'] / means['temperature']['energy_score']:.3f}x, cov90 "
        f"{means[mode]['cov90']:.3f} vs {means['temperature']['cov90']:.3f}"
        for mode in ("none", "spread", "both")
    ]
    finish("calibration", rows, list(rows[0]), args.out,
           {"date": meta["date"], "threads": args.threads, "torch": meta["torch"],
            "steps": steps}, notes)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
