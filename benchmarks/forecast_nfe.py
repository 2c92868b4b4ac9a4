"""tsdiff sampling speed against coherence: predict time per window beside DeepAR's (same run,
same process, same threads) and CRPS of the horizon sum, for each sampler mechanism.

Protocol: each data set of ``benchmarks.datasets.load`` (default elecdemand and tmy3), its first
``--max-windows`` test origins (or last windows per series), 100 paths per window. One tsdiff model
per data set, trained here with the defaults ``Forecaster(prediction_length, context_length,
freq)`` and a short budget (``--max-steps``; ``--hp`` adds settings, e.g. channels) or loaded from
``--ckpt NAME``; its fitted temperature is used by every row (not refitted per sampler). GluonTS
DeepAR (``--deepar-epochs``, a short fit is enough for timing) is trained and timed in the same
process: its predict call over the same windows.

Rows (``mechanism``): ``one cell/step`` (NFE = H * C cells, the coherence reference);
``linear`` (NFE H / 4, 4, 3, 2, 1) and ``cosine`` (NFE 4, 3, 2) commit schedules
(:func:`tsdiff.diffusion.commit_counts`); ``branch``: ceil(100 / b) network rows per window,
each branching into b paths at the last step (:func:`tsdiff.diffusion.hard_paths`); ``bf16``
(autocast inference) and ``1 window/call`` (no batching of windows) at NFE 2, cosine;
``default`` (the forecaster's configured sampler). The context's keys/values are cached once per window in every row
(:meth:`tsdiff.model.NumericDenoiser.horizon`).

Scores: CRPS (sum CRPS / sum |y| over cells), ``crps_hsum``: the same for the horizon sum of
every series and channel (sum the H steps of each path and of the truth, then CRPS; paths that
are independent over time fail it), and its ratio to the one-cell-per-step row. Wall-clock:
the whole backtest call (frame to windows, sampling, decoding) per window, best of
``--repeats``, as CPU time of the process (``cpu_ms_per_window``; one thread, so CPU time is
the compute, and on a shared machine the wall-clock mostly measures the other jobs) and as
wall-clock (``wall_ms_per_window``); the ratio to DeepAR is of CPU times.

    python -m benchmarks.forecast_nfe --quick          # smoke run, writes .data/bench/quick/
    python -m benchmarks.forecast_nfe --threads 1 --max-windows 7 --max-steps 500

Goal (issue 20): a sampler at most 2x DeepAR's predict time per window with ``crps_hsum``
within 3 % of one cell per step. Rows go into benchmarks/results/forecast_nfe.csv (the rows of
the data sets run replace theirs, others are kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks import peers
from benchmarks.common import add_out_argument, format_table, print_header, results_dir, write_csv
from benchmarks.datasets import load, window_splits, windows_to_arrays
from tsdiff import metrics as M
from tsdiff.forecaster import Forecaster

DATASETS = ("elecdemand", "tmy3")
NUM_SAMPLES = 100
QUICK_HP = dict(patch_size=4, d_model=32, n_layers=1, n_heads=2, batch_size=32, max_steps=20)


def nfe_grid(H: int) -> list[int]:
    """NFE values below one cell per step: H / 4 (the old default), 4, 3, 2, 1 (distinct)."""
    return sorted({s for s in (max(1, H // 4), 4, 3, 2, 1) if s <= H}, reverse=True)


def score(samples: np.ndarray, y: np.ndarray) -> dict:
    """CRPS, horizon-sum CRPS, wQL and 90 % coverage of paths [N, S, H, C] against y [N, H, C]."""
    x = np.asarray(samples, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    fx, fy = x.transpose(0, 3, 1, 2), yy.transpose(0, 2, 1)  # [N, C, S, H], [N, C, H]
    return {
        "crps": M.normalised_crps(fx, fy),
        "crps_hsum": M.normalised_crps(fx.sum(-1, keepdims=True), fy.sum(-1, keepdims=True)),
        "wql": M.weighted_quantile_loss(fx, fy),
        "cov90": M.coverage(fx, fy, 0.9),
    }


def mechanisms(H: int, cells: int) -> list[tuple[str, dict]]:
    """(mechanism, sampler overrides) rows of one data set; ``cells`` = H * C of one sequence."""
    rows = [("one cell/step", {"steps": cells})]
    rows += [("linear", {"steps": s, "schedule": "linear"}) for s in nfe_grid(H) if s < cells]
    rows += [("cosine", {"steps": s, "schedule": "cosine"}) for s in (4, 3, 2) if s < cells]
    rows += [("branch", {"steps": s, "schedule": sched, "branch": b})
             for s, sched, b in ((2, "linear", 4), (2, "cosine", 2), (2, "cosine", 4),
                                 (3, "cosine", 4), (4, "cosine", 4))]  # fmt: skip
    rows += [("bf16", {"steps": 2, "schedule": "cosine", "precision": "bf16"}),
             ("1 window/call", {"steps": 2, "schedule": "cosine", "max_tokens": 1}),
             ("default", {})]  # fmt: skip
    return rows


class _Clock:
    """Stands in for the ``time`` module of :mod:`benchmarks.peers` during one call: its
    ``perf_counter`` returns CPU time of this process (``time.process_time``; the machine is
    shared, so wall-clock mostly measures other jobs) and records the wall-clock beside it."""

    def __init__(self) -> None:
        self.walls: list[float] = []

    def perf_counter(self) -> float:
        self.walls.append(time.perf_counter())
        return time.process_time()


def deepar_cpu(df, proto, args) -> tuple[peers.PeerResult, float]:
    """DeepAR fitted and run by :func:`benchmarks.peers.deepar` (``--deepar-epochs``); its
    ``predict_seconds`` in CPU seconds, and the predict wall-clock seconds (the last two
    clock readings of the call: after training, after predicting)."""
    clock, saved = _Clock(), peers.time
    peers.time = clock
    try:
        r = peers.deepar(df, proto, n_samples=NUM_SAMPLES, seed=0, max_epochs=args.deepar_epochs,
                         quick=args.quick)  # fmt: skip
    finally:
        peers.time = saved
    return r, clock.walls[-1] - clock.walls[-2]


def get_model(name: str, df, proto, args) -> tuple[Forecaster, str]:
    if args.ckpt and (args.ckpt / name / "config.json").is_file():
        return Forecaster.load(args.ckpt / name), f"loaded {args.ckpt / name}"
    train, _ = window_splits(df, proto)
    cols = list(proto.target_columns)
    hp = {**(QUICK_HP if args.quick else {"max_steps": args.max_steps}), **args.hp}
    f = Forecaster(
        prediction_length=proto.prediction_length, context_length=proto.context_length,
        freq=proto.freq, seed=0, progress=False, **hp,
    )  # fmt: skip
    t0 = time.perf_counter()
    f.fit(train[["item_id", "timestamp", *cols]], target=cols)
    note = f"trained here in {time.perf_counter() - t0:.0f} s ({hp})"
    if args.ckpt and not args.quick:
        f.save(args.ckpt / name)
        note += f", saved to {args.ckpt / name}"
    return f, note


def run_dataset(name: str, args) -> list[dict]:
    df, proto = load(name, data_cache=args.data_cache)
    if args.quick:
        proto = dataclasses.replace(proto, target_columns=proto.target_columns[:2])
    if proto.test_origins:
        proto = dataclasses.replace(proto, test_origins=proto.test_origins[: args.max_windows])
    f, note = get_model(name, df, proto, args)
    print(f"{name}: {note}; temperature {f.temperature}", flush=True)
    cols = ["item_id", "timestamp", *proto.target_columns]
    _, windows = window_splits(df, proto)
    _, y = windows_to_arrays(windows, proto)
    n_win = y.shape[0]
    H, C = proto.prediction_length, len(proto.target_columns)
    cells = H * (1 if f.config.channels == "independent" else C)
    r, dar_wall = deepar_cpu(df, proto, args)
    dar_ms = 1000 * r.predict_seconds / n_win
    base = {"data": name, "windows": n_win, "H": H, "C": C, "cells": cells,
            "temperature": f.temperature, "channels": f.config.channels}  # fmt: skip
    out = [{**base, "mechanism": "deepar", "schedule": "", "nfe": H, "branch": 1, **score(r.samples, y),
            "cpu_ms_per_window": dar_ms, "wall_ms_per_window": 1000 * dar_wall / n_win}]  # fmt: skip
    print(f"  deepar: {dar_ms:.1f} ms/window, CRPS {out[0]['crps']:.4f}", flush=True)
    kw = {"origins": list(proto.test_origins)} if proto.test_origins else {
        "windows": proto.n_test_windows}  # fmt: skip
    full = df[cols]
    for mech, opts in mechanisms(H, cells):
        best, wall = float("inf"), float("inf")
        for _ in range(args.repeats):
            t0, w0 = time.process_time(), time.perf_counter()
            bt = f.backtest(full, num_samples=NUM_SAMPLES, seed=0, **kw, **opts)
            best = min(best, time.process_time() - t0)
            wall = min(wall, time.perf_counter() - w0)
        sched = opts.get("schedule", f.config.schedule)
        row = {**base, "mechanism": mech, "schedule": sched, "nfe": bt["nfe"],
               "branch": opts.get("branch", f.config.branch),
               **score(bt["samples"], y), "cpu_ms_per_window": 1000 * best / n_win,
               "wall_ms_per_window": 1000 * wall / n_win}  # fmt: skip
        out.append(row)
        print(f"  {mech:14s} {sched:7s} NFE {bt['nfe']:3d} x{row['branch']}: {row['cpu_ms_per_window']:8.1f} CPU ms/window"
              f" CRPS {row['crps']:.4f} hsum {row['crps_hsum']:.4f}", flush=True)  # fmt: skip
    ref = next(r for r in out if r["mechanism"] == "one cell/step")
    for r in out:
        r["ratio_deepar"] = r["cpu_ms_per_window"] / dar_ms
        r["hsum_vs_ref"] = r["crps_hsum"] / ref["crps_hsum"]
        r["goal"] = ("PASS" if r["ratio_deepar"] <= 2 and r["hsum_vs_ref"] <= 1.03 else "MISS"
                     ) if r["mechanism"] != "deepar" else ""  # fmt: skip
    return out


TABLE = ("data", "mechanism", "schedule", "nfe", "branch", "cpu_ms_per_window", "wall_ms_per_window", "ratio_deepar", "crps",
         "crps_hsum", "hsum_vs_ref", "cov90", "goal")  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="timing repeats (best of)")
    ap.add_argument("--max-windows", type=int, default=7, help="keep the first K origins")
    ap.add_argument("--max-steps", type=int, default=500, help="tsdiff training steps")
    ap.add_argument("--deepar-epochs", type=int, default=5)
    ap.add_argument("--hp", type=json.loads, default={}, help="extra Forecaster settings (JSON)")
    ap.add_argument("--data-cache", type=Path, default=None)
    ap.add_argument(
        "--ckpt", type=Path, default=None, help="folder of NAME checkpoints (load/save)"
    )
    add_out_argument(ap)
    args = ap.parse_args(argv)
    args.out = results_dir(args.out, args.quick)
    if not isinstance(args.hp, dict):
        ap.error(f"--hp: expected a JSON object, got {args.hp!r}")
    warnings.filterwarnings("ignore")
    for n in ("lightning", "lightning.pytorch", "pytorch_lightning", "gluonts"):
        logging.getLogger(n).setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    names = [n for n in args.datasets.split(",") if n]
    meta = print_header("forecast_nfe", [
        f"data sets {names}, first {args.max_windows} origins, {NUM_SAMPLES} paths, "
        f"{args.threads} thread(s); tsdiff {args.max_steps} training steps, DeepAR "
        f"{args.deepar_epochs} epochs; wall-clock best of {args.repeats}"], args)  # fmt: skip
    rows = []
    for name in names:
        rows += run_dataset(name, args)
    mm = {**{f"machine_{k}": v for k, v in meta.items()}, "quick": args.quick}
    p = write_csv(args.out, "forecast_nfe", rows, mm, key=("data",))
    print(f"wrote {p}")
    if args.quick:
        print("(--quick: tiny models; these numbers are not benchmark results)")
    print(format_table([{k: r[k] for k in TABLE} for r in rows]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
