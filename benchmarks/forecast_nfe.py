"""tsdiff: CRPS against NFE per path, for each sampler, on two data sets (elecdemand and
us_employment by default; TMY3 with ``--datasets``).

Protocol: the data sets' backtests of benchmarks/datasets.py (trained once on the data before the
first origin, no covariates), one trained model per data set and mode (seed 0, the settings of
benchmarks/forecast.py; loaded from ``--ckpt`` when forecast.py saved it there: ``NAME`` for the
masked model, ``NAME-flow`` for the flow model), re-sampled with 100 paths per window at
NFE = H * C (one cell per step) down to 1, for each sampler: the masked model with each commitment
order (entropy = default, random, prob) and with soft commitment (``soft``: DMax-style, entropy
order), and the flow model (``flow``: Euler steps = NFE). Calibration (``--recalibrate``):
``per-nfe`` (default) refits the temperature (flow: noise scale) of every (sampler, NFE) row on
the validation windows fit() held out, with that row's order and steps, as
``Forecaster(steps=NFE, order=...)`` would at fit time (soft rows take the entropy order's
temperature at the same NFE); ``none`` keeps the one fitted at the default NFE = ceil(H / 4) for
every row. Wall-clock is the whole backtest call (frame to windows, sampling, windows x 100
paths, GPU synchronised), best of ``--repeats``. ``--max-windows K`` keeps the first K origins
(a cheaper CPU run; said in the header).

Goals (issue 4): some NFE <= H / 4 whose CRPS is within 3 % of the one-cell-per-step sampler's;
wall-clock for 100 paths within 2x of DeepAR's. DeepAR (gluonts torch, forecast.py's settings,
seed 0) is trained and timed in the same run, process and thread count (its predict call over
the same windows, 100 paths); ``--deepar-csv FILE`` reads its time from the per-seed rows of a
forecast.csv instead.

    python -m benchmarks.forecast_nfe --quick          # smoke run, writes .data/bench/quick/
    python -m benchmarks.forecast_nfe --datasets elecdemand --threads 1 --repeats 2 \
        --max-windows 7 --data-cache .data/bench/forecast_data --ckpt .data/bench/forecast_ckpt

Writes its rows into benchmarks/results/forecast_nfe.csv, replacing the rows of the data sets it
ran and keeping the others, then reports goals, table and forecast_nfe.png from the whole file.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import peers
from benchmarks.common import (
    add_out_argument,
    format_table,
    print_header,
    results_dir,
    save_png,
    write_csv,
)
from benchmarks.datasets import window_splits, windows_to_arrays
from benchmarks.forecast import (
    NUM_SAMPLES,
    _load,
    _quiet,
    backtest_kwargs,
    score,
    tsdiff_config,
    tsdiff_hp,
)
from tsdiff.forecaster import Forecaster

DATASETS = ("elecdemand", "us_employment")
SAMPLERS = {
    "entropy": {"order": "entropy"},
    "random": {"order": "random"},
    "prob": {"order": "prob"},
    "soft": {"order": "entropy", "commit": "soft"},
    "flow": {},  # the flow-mode model
}


def _n_windows(p, max_windows) -> str:
    if p.test_origins:
        n = len(p.test_origins[:max_windows] if max_windows else p.test_origins)
        return f"{n} origins" + (f" (first {max_windows} of the protocol)" if max_windows else "")
    return f"last {p.n_test_windows} window(s) of each series"


def step_grid(H: int, C: int) -> list[int]:
    n = H * C
    grid = {n, H, max(1, H // 2), max(1, H // 4), max(1, H // 8), 3, 2, 1}
    return sorted((s for s in grid if s <= n), reverse=True)


def deepar_predict_s(path: Path | None, rows: list[dict]) -> dict:
    """Mean DeepAR predict wall-clock per window (100 paths) per data set: from this run's
    ``deepar`` rows, or from the per-seed rows of a forecast.csv (``path``; an old
    forecast_runs.csv, without the ``level`` column, works too).

    Per window, so that a run on the first K origins (``--max-windows``) compares like with like.
    """
    out: dict[str, list[float]] = {}
    if path is None:
        for r in rows:
            if r["order"] == "deepar":
                out.setdefault(r["data"], []).append(
                    float(r["seconds_100_paths"]) / float(r["windows"])
                )
    elif path.is_file():
        with open(path) as f:
            for r in csv.DictReader(f):
                if r["model"] == "deepar" and r.get("level", "seed") == "seed":
                    out.setdefault(r["data"], []).append(
                        float(r["predict_s"]) / float(r["windows"])
                    )
    return {k: float(np.mean(v)) for k, v in out.items()}


def deepar_row(name, df, proto, y, args) -> dict:
    """DeepAR trained and timed here: a row (order ``deepar``) beside the tsdiff rows."""
    r = peers.deepar(df, proto, n_samples=NUM_SAMPLES, seed=0, quick=args.quick)
    s = score(r.samples, y)
    H, C = proto.prediction_length, len(proto.target_columns)
    return {"data": name, "order": "deepar", "steps": H, "nfe": H, "cells_per_step": C,
             **{k: s[k] for k in ("crps", "wql", "cov50", "cov90", "calibration_error",
                                  "energy_score")},
             "seconds_100_paths": r.predict_seconds, "windows": y.shape[0], "H": H, "C": C,
             "device": "cpu", "temperature": float("nan")}  # fmt: skip


def calibrated(f, train, order: str, steps: int, args, fitted: dict) -> float:
    """The temperature of (order, steps): refitted on the validation windows (per-nfe) or the
    model's own (none). Soft commitment uses the entropy order's value; ``fitted`` remembers
    the values already fitted for this model, keyed by (order, steps)."""
    if args.recalibrate == "none":
        return f.temperature
    key = ("entropy" if order == "soft" else order, steps)
    if key not in fitted:
        flow = f.config.mode == "flow"
        f.recalibrate(train, steps=steps, **({} if flow else {"order": key[0]}))
        fitted[key] = f.temperature
    return fitted[key]


def get_model(name, args, torch, mode="masked"):
    df, proto = _load(name, args.data_cache, args.quick)
    ck = args.ckpt / (name if mode == "masked" else f"{name}-{mode}") if args.ckpt else None
    if ck and (ck / "config.json").is_file() and not args.quick:
        f = Forecaster.load(ck)
        if args.device == "cpu":
            f.model.to("cpu")
        return f, df, proto, "loaded " + str(ck)
    cfg = tsdiff_config(
        proto, tsdiff_hp(name, args), seed=0, mode=mode, precision=args.precision,
        accelerator="gpu" if args.device == "cuda" else "cpu",
    )  # fmt: skip
    train, _ = window_splits(df, proto)
    cols = list(proto.target_columns)
    t0 = time.perf_counter()
    f = Forecaster(cfg).fit(train[["item_id", "timestamp", *cols]], target=cols)
    note = f"trained here in {time.perf_counter() - t0:.0f} s"
    if ck and not args.quick:  # kept for the next run (the same folder forecast.py fills)
        f.save(ck)
        note += f", saved to {ck}"
    return f, df, proto, note


def read_rows(path: Path) -> list[dict]:
    """Rows of a forecast_nfe CSV with the numbers :func:`report` uses parsed."""
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("steps", "nfe", "H", "C", "windows"):
            r[k] = int(float(r[k]))
        for k in ("energy_score", "crps", "wql", "cov50", "cov90", "calibration_error",
                  "seconds_100_paths", "cells_per_step"):  # fmt: skip
            r[k] = float(r.get(k) or "nan")
    return rows


def report(rows, names, args, suffix) -> None:
    """Goals, plot and table from the rows (also from a CSV with --report-only)."""
    dar = deepar_predict_s(args.deepar_csv, rows)
    goal_rows = []
    for name in names:
        H = int(next(r["H"] for r in rows if r["data"] == name))
        for order in dict.fromkeys(r["order"] for r in rows if r["data"] == name):
            rs = [r for r in rows if r["data"] == name and r["order"] == order
                  and r["device"] == args.device]  # fmt: skip
            if not rs or order == "deepar":  # DeepAR is the reference, not a sampler
                continue
            ref = next(r for r in rs if r["nfe"] == max(x["nfe"] for x in rs))
            ok = [r for r in rs if r["nfe"] <= H / 4 and r["crps"] <= 1.03 * ref["crps"]]
            pick = min(ok, key=lambda r: r["nfe"]) if ok else None
            default = next((r for r in rs if r["nfe"] == max(1, -(-H // 4))), None)
            d = dar.get(name)
            row = pick or default or {}
            t = row.get("seconds_100_paths", float("nan")) / float(row.get("windows", 1) or 1)
            goal_rows.append({
                "data": name, "order": order, "CRPS 1 cell/step": ref["crps"],
                "min NFE <= H/4 within 3%": pick["nfe"] if pick else "none",
                "its CRPS": pick["crps"] if pick else (default or {}).get("crps", float("nan")),
                "NFE goal": "PASS" if pick else "MISS",
                "tsdiff s / window (100 paths)": t,
                "DeepAR s / window": d if d is not None else float("nan"),
                "time goal (<= 2x)": ("PASS" if t <= 2 * d else "MISS") if d else "n/a",
            })  # fmt: skip

    protos = {n: type("P", (), {"prediction_length": int(next(r["H"] for r in rows
              if r["data"] == n))}) for n in names}  # fmt: skip
    try:
        import matplotlib  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
        for ax, name in zip(axes[0], names, strict=True):
            H = protos[name].prediction_length
            for order in dict.fromkeys(r["order"] for r in rows if r["data"] == name):
                rs = sorted((r for r in rows if r["data"] == name and r["order"] == order
                             and r["device"] == args.device), key=lambda r: r["nfe"])  # fmt: skip
                if order == "deepar":
                    ax.axhline(rs[0]["crps"], color="k", lw=0.8, label="DeepAR")
                    continue
                ax.plot([r["nfe"] for r in rs], [r["crps"] for r in rs], "o-", label=order)
            ref = [r["crps"] for r in rows if r["data"] == name and r["order"] == "entropy"
                   and r["device"] == args.device]  # fmt: skip
            ref_nfe = max(r["nfe"] for r in rows if r["data"] == name)
            ref_crps = next(r["crps"] for r in rows if r["data"] == name and r["order"] ==
                            "entropy" and r["nfe"] == ref_nfe and r["device"] == args.device)  # fmt: skip
            ax.axhline(1.03 * ref_crps, color="grey", ls="--", lw=0.8,
                       label="1.03 x entropy @ 1 cell/step")  # fmt: skip
            ax.axvline(H / 4, color="grey", ls=":", lw=0.8, label="H/4")
            ax.set_xscale("log")
            ax.set_xlabel("NFE per path")
            ax.set_ylabel("CRPS (sum / sum |y|)")
            ax.set_title(f"{name} ({len(ref)} NFE values, 100 paths)")
            ax.legend(fontsize=8)
        fig.suptitle("tsdiff: CRPS vs NFE per sampler" + (" (--quick)" if args.quick else ""))
        print(f"wrote {save_png(fig, args.out, f'forecast_nfe{suffix}')}")
    except ImportError:
        print("matplotlib missing: no plot")
    if args.quick:
        print("(--quick: tiny models; these numbers are not benchmark results)")
    print("\ngoals (issue 4):")
    print(format_table(goal_rows))
    print()
    show = [{k: r[k] for k in ("data", "order", "nfe", "crps", "wql", "cov50", "cov90",
                               "calibration_error", "energy_score", "seconds_100_paths", "temperature",
                               "device")}
            for r in rows]  # fmt: skip
    print(format_table(show), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="timing repeats (best of)")
    ap.add_argument("--data-cache", type=Path, default=None)
    ap.add_argument(
        "--ckpt",
        type=Path,
        default=None,
        help="forecast.py --save-ckpt folder: models found there are loaded, others saved there",
    )
    ap.add_argument("--max-steps", type=int, default=None, help="override tsdiff steps")
    ap.add_argument("--max-time-s", type=float, default=None, help="tsdiff training time cap")
    ap.add_argument("--precision", default="bf16-mixed", help="training precision (no --ckpt)")
    ap.add_argument(
        "--samplers", default=",".join(SAMPLERS), help="subset of " + str(list(SAMPLERS))
    )
    ap.add_argument("--max-windows", type=int, default=None, help="keep the first K origins")
    ap.add_argument(
        "--deepar-csv",
        type=Path,
        default=None,
        help="read DeepAR's predict time from this forecast.csv (its per-seed rows) instead of "
        "timing it here",
    )
    ap.add_argument(
        "--recalibrate",
        default="per-nfe",
        choices=["per-nfe", "none"],
        help="per-nfe: refit the temperature for every (sampler, NFE) on validation windows",
    )
    ap.add_argument(
        "--cpu-timing-threads",
        type=int,
        default=1,
        help="also time the default sampler on CPU with this many threads (0: skip)",
    )
    add_out_argument(ap)
    ap.add_argument(
        "--report-only",
        type=Path,
        default=None,
        help="print goals, table and plot from this forecast_nfe CSV (no sampling)",
    )
    args = ap.parse_args(argv)
    args.out = results_dir(args.out, args.quick)
    if args.report_only:
        rows = read_rows(args.report_only)
        args.device = rows[0]["device"]
        names = list(dict.fromkeys(r["data"] for r in rows))
        print(
            f"report of {args.report_only} (machine: {rows[0].get('machine_gpu', '')}, "
            f"{rows[0].get('machine_date', '')})"
        )
        report(rows, names, args, "")
        return 0
    torch = _quiet(args.threads)
    names = [n for n in args.datasets.split(",") if n]
    samplers = [x for x in args.samplers.split(",") if x]
    if unknown := sorted(set(samplers) - set(SAMPLERS)):
        ap.error(f"--samplers: unknown {unknown}; expected some of {list(SAMPLERS)}")
    protos = {n: _load(n, args.data_cache, args.quick)[1] for n in names}
    lines = [
        f"{n}: freq {p.freq}, H {p.prediction_length}, C {len(p.target_columns)}, context "
        f"{p.context_length}, {_n_windows(p, args.max_windows)}, {NUM_SAMPLES} paths, steps "
        f"{step_grid(p.prediction_length, len(p.target_columns))}"
        for n, p in protos.items()
    ]
    lines += [
        "one model per data set (seed 0, forecast.py settings), re-sampled for every (order, "
        "NFE); temperature "
        + (
            "refitted per (order, NFE) on the validation windows"
            if args.recalibrate == "per-nfe"
            else "fitted once at the default NFE"
        )
        + "; CRPS = sum CRPS / sum |y| (exact sample CRPS)",
        "wall-clock: the whole backtest call over all windows x 100 paths (best of repeats), "
        "GPU synchronised; DeepAR predict time "
        + (
            f"from {args.deepar_csv}"
            if args.deepar_csv
            else f"measured here (trained in this run, {args.threads} thread(s))"
        ),
    ]
    meta = print_header("forecast_nfe", lines, args)
    if args.device == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(0)
    rows = []
    for name in names:
        models = {}
        for mode in dict.fromkeys("flow" if x == "flow" else "masked" for x in samplers):
            models[mode] = get_model(name, args, torch, mode)
            print(f"{name}: {mode} model {models[mode][3]}; temperature "
                  f"{models[mode][0].temperature}", flush=True)  # fmt: skip
        _, df, proto, _ = next(iter(models.values()))
        if args.max_windows and proto.test_origins:
            proto = dataclasses.replace(proto, test_origins=proto.test_origins[: args.max_windows])
        cols = ["item_id", "timestamp", *proto.target_columns]
        train, windows = window_splits(df, proto)
        train, full = train[cols], df[cols]
        _, y = windows_to_arrays(windows, proto)
        H, C = proto.prediction_length, len(proto.target_columns)
        if args.deepar_csv is None and args.device == "cpu":
            rows.append(deepar_row(name, df, proto, y, args))
            print(f"  {name} DeepAR: CRPS {rows[-1]['crps']:.4f} predict "
                  f"{rows[-1]['seconds_100_paths']:.2f}s", flush=True)  # fmt: skip
        kw = backtest_kwargs(proto)
        fitted = {mode: {} for mode in models}
        for order in samplers:
            mode = "flow" if order == "flow" else "masked"
            f = models[mode][0]
            for steps in step_grid(H, C):
                temp = calibrated(f, train, order, steps, args, fitted[mode])
                best = math.inf
                for _rep in range(args.repeats):
                    if args.device == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    bt = f.backtest(full, num_samples=NUM_SAMPLES, seed=0, steps=steps,
                                    temperature=temp, **SAMPLERS[order], **kw)  # fmt: skip
                    best = min(best, time.perf_counter() - t0)
                s = score(bt["samples"], y)
                rows.append({"data": name, "order": order, "steps": steps, "nfe": bt["nfe"],
                             "cells_per_step": H * C / bt["nfe"], "crps": s["crps"],
                             "wql": s["wql"], "cov50": s["cov50"], "cov90": s["cov90"],
                             "calibration_error": s["calibration_error"],
                             "energy_score": s["energy_score"],
                             "seconds_100_paths": best, "windows": y.shape[0], "H": H, "C": C,
                             "device": args.device, "temperature": temp})  # fmt: skip
                print(f"  {name} {order:7s} NFE {bt['nfe']:4d}: CRPS {s['crps']:.4f} "
                      f"cov90 {s['cov90']:.3f} T {temp} {best:.2f}s", flush=True)  # fmt: skip
        f = models.get("masked", next(iter(models.values())))[0]
        if args.cpu_timing_threads and args.device == "cuda":
            f.model.to("cpu")
            f.config.accelerator = "cpu"
            torch.set_num_threads(args.cpu_timing_threads)
            t0 = time.perf_counter()
            bt = f.backtest(full, num_samples=NUM_SAMPLES, seed=0, **kw)
            cpu_s = time.perf_counter() - t0
            torch.set_num_threads(args.threads)
            rows.append({"data": name, "order": f.config.order, "steps": bt["nfe"],
                         "nfe": bt["nfe"], "cells_per_step": H * C / bt["nfe"],
                         **{k: float("nan") for k in ("crps", "wql", "cov50", "cov90",
                                                       "calibration_error", "energy_score")},
                         "seconds_100_paths": cpu_s, "windows": y.shape[0], "H": H, "C": C,
                         "device": f"cpu {args.cpu_timing_threads} thread(s)",
                         "temperature": f.temperature})  # fmt: skip
        del f, models
        if args.device == "cuda":
            torch.cuda.empty_cache()

    mm = {**{f"machine_{k}": v for k, v in meta.items()}, "quick": args.quick}
    p = write_csv(args.out, "forecast_nfe", rows, mm, key=("data",))
    print(f"wrote {p} (the rows of {names}; other data sets' rows kept)")
    rows = read_rows(p)
    report(rows, list(dict.fromkeys(r["data"] for r in rows)), args, "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
