"""Where a multivariate wQL gap comes from: per-channel wQL of tsdiff and DeepAR on one backtest.

Protocol: forecast.py's (the data sets of benchmarks/datasets.py, models trained once on the data
before the first origin, 100 paths per window); tsdiff with forecast.py's settings for the device
(the CPU step budgets on ``--device cpu``) and its default sampler, DeepAR with forecast.py's
(30 epochs x 50 batches, Student-t, one global model over the (item, channel) series). For every
target channel c: its own wQL (GluonTS mean weighted quantile loss over q = 0.1 ... 0.9, on that
channel's cells) and its **part** of the data set's wQL (the channel's quantile loss over the
sum |y| of all channels: a model's parts add up to its wQL, and the gaps to the difference).
One training seed (``--seed``): a diagnosis, not a result over seeds. ``--channels joint`` runs
forecast.py's joint-channel twin (variant "joint") instead of the default channel-independent
model.

    python -m benchmarks.forecast_channels --data-cache .data/bench/forecast_data   # TMY3 + Appliances, ~25 min on 2 cores
    python -m benchmarks.forecast_channels --channels joint --data-cache .data/bench/forecast_data
    python -m benchmarks.forecast_channels --quick     # smoke run, writes .data/bench/quick/

Writes its rows into benchmarks/results/forecast_channels.csv, replacing the rows of the same
(channels, data, seed) and keeping the others.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np

from benchmarks import peers
from benchmarks.common import add_out_argument, format_table, print_header, results_dir, write_csv
from benchmarks.datasets import window_splits, windows_to_arrays
from benchmarks.forecast import (
    NUM_SAMPLES,
    _load,
    _quiet,
    backtest_kwargs,
    tsdiff_config,
    tsdiff_hp,
)
from tsdiff.forecaster import Forecaster
from tsdiff.metrics import weighted_quantile_loss


def channel_wql(samples: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel wQL [C] and each channel's contribution to the data set's wQL [C] (its
    sum QL over the total sum |y|; the contributions add up to the wQL of all channels) of
    samples [N, S, H, C] and y [N, H, C]."""
    fx, fy = samples.transpose(0, 3, 1, 2), y.transpose(0, 2, 1)  # [N, C, S, H], [N, C, H]
    wql = np.array([weighted_quantile_loss(fx[:, c], fy[:, c]) for c in range(y.shape[-1])])
    mass = np.nansum(np.abs(fy), axis=(0, 2))  # sum |y| per channel
    return wql, wql * mass / mass.sum()


def run_model(model: str, name: str, seed: int, args) -> dict:
    """Train one model on the data before the first origin and backtest it: samples and y."""
    _quiet(args.threads)
    df, proto = _load(name, args.data_cache, args.quick)
    train, windows = window_splits(df, proto)
    _, y = windows_to_arrays(windows, proto)
    cols = list(proto.target_columns)
    if model == "deepar":
        samples = peers.deepar(
            df, proto, n_samples=NUM_SAMPLES, seed=seed, quick=args.quick
        ).samples
        return {"samples": samples, "y": y, "channels": cols, "temperature": float("nan")}
    ns = argparse.Namespace(**vars(args), hp=None, max_steps=None, max_time_s=None)
    hp = tsdiff_hp(name, ns, "joint" if args.channels == "joint" else "masked")
    cfg = tsdiff_config(proto, hp, seed=seed, precision="bf16-mixed")
    f = Forecaster(cfg).fit(train[["item_id", "timestamp", *cols]], target=cols)
    bt = f.backtest(
        df[["item_id", "timestamp", *cols]], num_samples=NUM_SAMPLES, seed=seed,
        **backtest_kwargs(proto),
    )  # fmt: skip
    return {"samples": bt["samples"], "y": y, "channels": cols, "temperature": f.temperature}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny models, few windows")
    ap.add_argument("--datasets", default="tmy3,appliances")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="models trained at once (processes)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--device", default="cpu", choices=["cpu"])
    ap.add_argument("--data-cache", type=Path, default=None)
    ap.add_argument(
        "--channels",
        default="independent",
        choices=["independent", "joint"],
        help="tsdiff's channel mode: forecast.py's default model or its joint twin",
    )
    add_out_argument(ap)
    args = ap.parse_args(argv)
    args.out = results_dir(args.out, args.quick)
    names = [n for n in args.datasets.split(",") if n]
    protos = {n: _load(n, args.data_cache, args.quick)[1] for n in names}
    meta = print_header(
        "forecast_channels",
        [f"{n}: freq {p.freq}, H {p.prediction_length}, channels {list(p.target_columns)}, "
         f"{p.n_windows} windows, {NUM_SAMPLES} paths" for n, p in protos.items()]
        + [f"tsdiff (forecast.py CPU settings, channels {args.channels}, default sampler) and "
           f"DeepAR, seed {args.seed}; part = the channel's sum QL over all channels' sum |y|"],
        args,
    )  # fmt: skip
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx, max_tasks_per_child=1) as pool:
        futs = {
            (model, n): pool.submit(run_model, model, n, args.seed, args)
            for n in names
            for model in ("tsdiff", "deepar")
        }
        res = {k: f.result() for k, f in futs.items()}
    rows = []
    for n in names:
        (tw, tc), (dw, dc) = (channel_wql(res[(m, n)]["samples"], res[(m, n)]["y"])
                              for m in ("tsdiff", "deepar"))  # fmt: skip
        chans = res[("tsdiff", n)]["channels"] + ["(all)"]
        tw, dw = np.append(tw, tc.sum()), np.append(dw, dc.sum())
        tc, dc = np.append(tc, tc.sum()), np.append(dc, dc.sum())
        for c, col in enumerate(chans):
            rows.append({"channels": args.channels, "data": n, "channel": col, "seed": args.seed, "tsdiff wQL": tw[c],
                         "DeepAR wQL": dw[c], "tsdiff / DeepAR": tw[c] / dw[c],
                         "tsdiff part of wQL": tc[c], "DeepAR part of wQL": dc[c],
                         "gap (tsdiff - DeepAR)": tc[c] - dc[c],
                         "tsdiff T": res[("tsdiff", n)]["temperature"]})  # fmt: skip
    mm = {**{f"machine_{k}": v for k, v in meta.items()}, "quick": args.quick}
    p = write_csv(args.out, "forecast_channels", rows, mm, key=("channels", "data", "seed"))
    print(f"wrote {p}")
    print(format_table(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
