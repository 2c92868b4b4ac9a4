"""tsdiff against the peers in one run: us_employment, elecdemand, TMY3, UCI Appliances.

Protocol (see ../shared/EVALUATION.md and benchmarks/datasets.py): rolling-origin backtests, every
model trained once on the rows before the first test origin of each item; 100 sample paths per
window; tsdiff and DeepAR with 3 training seeds (mean and sd); seasonal naive and ETS
(statsmodels) once. Scores: wQL (gluonts estimator, q = 0.1 ... 0.9), normalised CRPS (sum CRPS /
sum |y|), energy score on the joint path of each window ([H * C]), coverage of the central 50 /
80 / 90 / 95 % intervals, calibration error (mean over q = 0.05 ... 0.95 of |P(y < q-quantile) - q|),
ND of the median. Cost: NFE per path, training wall-clock, predict wall-clock for 100 paths on
every window, peak memory (torch.cuda.max_memory_allocated for GPU work, ru_maxrss of the worker
process for CPU work). tsdiff is sampled with each commitment order (entropy = default, random,
prob) and with soft commitment from the same trained model; a flow-mode model (continuous values)
is trained beside it. Covariate rows (issue 5): elecdemand with Temperature and WorkDay, and
tmy3_drivers (temp_air, relative_humidity given the solar, wind and pressure drivers): tsdiff+cov
and deepar+cov beside their no-covariate twins.

Work runs in fresh worker processes (one task per process): tsdiff jobs in a GPU pool, DeepAR
seeds and ETS pieces (per item chunk / per channel) in a CPU pool, 1 torch thread each.

    python -m benchmarks.forecast --quick                       # smoke run (~2 min on 2 cores)
    python -m benchmarks.forecast --gpu-jobs 2 --cpu-jobs 1 --threads 1 --max-time-s 120 \
        --data-cache .data/bench/forecast_data --deadline-s 6000   # the 2-core CPU run
    python -m benchmarks.forecast --device cuda --gpu-jobs 6 --cpu-jobs 10 \
        --data-cache .data/bench/forecast_data --save-ckpt .data/bench/forecast_ckpt

Writes benchmarks/results/forecast.csv whole: first the rows with ``level`` "mean" (one per data
set x model, seeds aggregated, and the geometric means), then the rows with ``level`` "seed"
(one per data set x model x seed). The per-seed rows already in that file are kept unless this
run measured the same (data, model, seed) (``--fresh``: start from this run's rows only), so a
partial run replaces its own rows and the means are recomputed over everything. Prints the goals
of issue 4 with PASS/MISS and the table last. ``--quick`` writes to .data/bench/quick/.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import dataclasses
import json
import logging
import multiprocessing as mp
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks import peers
from benchmarks.common import add_out_argument, format_table, print_header, results_dir, write_csv
from benchmarks.datasets import load, window_splits, windows_to_arrays
from benchmarks.peers import seasonal_naive
from tsdiff import metrics as M
from tsdiff.forecaster import Forecaster, ForecasterConfig

DATASETS = ("us_employment", "elecdemand", "tmy3", "appliances")
COV_DATASETS = ("elecdemand", "tmy3_drivers")  # the covariate rows (issue 5)
NUM_SAMPLES = 100
# the trained models ("variants") and the samplers each is backtested with (-> model names)
VARIANTS = ("masked", "flow", "cov", "joint")
SAMPLERS = {
    "masked": {"tsdiff/entropy": {"order": "entropy"}, "tsdiff/random": {"order": "random"},
               "tsdiff/prob": {"order": "prob"},
               "tsdiff/soft": {"order": "entropy", "commit": "soft"}},
    "flow": {"tsdiff-flow": {}},
    "cov": {"tsdiff+cov/entropy": {"order": "entropy"}},
    "joint": {"tsdiff-joint/entropy": {"order": "entropy"}},
}  # fmt: skip

# tsdiff settings per data set (context / horizon / freq come from the protocol)
TSDIFF_HP = {
    "us_employment": dict(patch_size=4, d_model=128, n_layers=3, n_heads=4, batch_size=256,
                          lr=2e-3, max_steps=3000),
    "elecdemand": dict(patch_size=8, d_model=192, n_layers=4, n_heads=4, batch_size=128,
                       lr=1e-3, max_steps=3000),
    "tmy3": dict(patch_size=8, d_model=192, n_layers=4, n_heads=4, batch_size=128,
                 lr=1e-3, max_steps=3000, channels="independent"),
    "appliances": dict(patch_size=8, d_model=192, n_layers=4, n_heads=4, batch_size=128,
                       lr=1e-3, max_steps=3000, channels="independent"),
}  # fmt: skip
TSDIFF_HP["tmy3_drivers"] = {**TSDIFF_HP["tmy3"], "channels": "joint"}
# The two multivariate main sets (one long series each, 6-10 channels) forecast their channels
# independently (ForecasterConfig.channels; see the README); the "joint" variant trains the joint
# model beside it with these settings (on --device cpu its own smaller step budget, JOINT_CPU_HP)
JOINT_HP = {n: {**TSDIFF_HP[n], "channels": "joint"} for n in ("tmy3", "appliances")}
# --device cpu: step budgets a 2-core machine finishes (the WSD schedule is sized to them, so the
# learning rate decays fully); the multivariate sets (6-10 channels: 324-450 cells per window)
# get a smaller model and batch; tmy3_drivers (2 channels, 90 cells) takes the small model for
# 1500 steps (~11 min a model on one thread), which it needs: 200 steps of the large one left
# tsdiff+cov at wQL 0.24, behind ETS
CPU_HP = {
    "us_employment": dict(max_steps=600),
    "elecdemand": dict(max_steps=200),
    "tmy3_drivers": dict(d_model=128, n_layers=3, batch_size=64, max_steps=1500),
    "tmy3": dict(d_model=128, n_layers=3, batch_size=128, max_steps=3000),
    "appliances": dict(d_model=128, n_layers=3, batch_size=128, max_steps=3000),
}  # fmt: skip
# the joint model of the multivariate sets: 324-450 cells a window, so a smaller batch and 400
# steps (about the training time of 3000 channel-independent steps, ~15 min on one thread)
JOINT_CPU_HP = dict(d_model=128, n_layers=3, batch_size=64, max_steps=400)
QUICK_HP = dict(patch_size=4, d_model=32, n_layers=1, n_heads=2, batch_size=32, lr=2e-3,
                max_steps=20)  # fmt: skip
# ETS: parameters estimated on the last ETS_FIT_SEASONS seasons before the first origin
ETS_FIT_SEASONS = {"us_employment": None, "elecdemand": 42, "tmy3": 42, "appliances": 7,
                   "tmy3_drivers": 42}  # fmt: skip
QUICK_ITEMS = 6  # us_employment items kept in --quick


def tsdiff_hp(name: str, args, variant: str = "masked") -> dict:
    """tsdiff settings for one data set: TSDIFF_HP (QUICK_HP and the set's channel mode with
    --quick; JOINT_HP for the joint variant), the CPU step budgets on --device cpu, then --hp,
    --max-steps / --max-time-s (also used by forecast_nfe.py)."""
    table, cpu = (JOINT_HP, JOINT_CPU_HP) if variant == "joint" else (TSDIFF_HP, CPU_HP[name])
    if args.quick:
        hp = {**QUICK_HP, "channels": table[name].get("channels", "joint")}
    else:
        hp = dict(table[name])
    if args.device == "cpu" and not args.quick:
        hp.update(cpu)
    hp.update(getattr(args, "hp", None) or {})
    if args.max_steps:
        hp["max_steps"] = args.max_steps
    if args.max_time_s:
        hp["max_time_s"] = args.max_time_s
    return hp


def hp_json(text: str) -> dict:
    """``--hp`` value: a JSON object whose keys are ForecasterConfig fields."""
    try:
        hp = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(
            f"--hp: expected a JSON object, got {text!r} ({e})"
        ) from None
    if not isinstance(hp, dict):
        raise argparse.ArgumentTypeError(f"--hp: expected a JSON object, got {text!r}")
    fields = {f.name for f in dataclasses.fields(ForecasterConfig)}
    unknown = sorted(set(hp) - (fields - {"prediction_length", "freq", "seed", "mode"}))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"--hp: unknown or protocol-fixed Forecaster settings {unknown}"
        )
    return hp


def sampler_names(text: str, ap: argparse.ArgumentParser) -> list[str]:
    """``--samplers`` -> model names of the masked variant; ``entropy`` means ``tsdiff/entropy``.
    An unknown name is an error (it would otherwise skip every backtest of the model)."""
    known = list(SAMPLERS["masked"])
    names = [n if n in known else f"tsdiff/{n}" for n in text.split(",") if n]
    if unknown := [n for n in names if n not in known]:
        ap.error(f"--samplers: unknown {unknown}; expected some of {known}")
    return names


def tsdiff_config(proto, hp: dict, *, seed: int, **settings):
    """The ForecasterConfig of a benchmark run: the protocol's horizon, context and frequency,
    then ``settings`` (device, precision, mode, covariates...), then ``hp`` (the per-set
    settings and any --hp probe, which may override the protocol's context)."""
    return ForecasterConfig(
        **{"prediction_length": proto.prediction_length, "context_length": proto.context_length,
           "freq": proto.freq, "seed": seed, "progress": False, "calibrate": True,
           **settings, **hp}
    )  # fmt: skip


def backtest_kwargs(proto) -> dict:
    """Forecaster.backtest's window arguments for a protocol: its shared origins, or the last
    ``n_test_windows`` horizons of each series."""
    if proto.test_origins:
        return {"origins": list(proto.test_origins)}
    return {"windows": proto.n_test_windows}


# ---------------------------------------------------------------------------------- workers
def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load(name: str, cache, quick: bool):
    df, proto = load(name, data_cache=cache)
    if quick:  # fewer origins and channels: a smoke run, not the protocol
        proto = dataclasses.replace(
            proto, test_origins=proto.test_origins[:4], target_columns=proto.target_columns[:2]
        )
    if quick and df["item_id"].nunique() > QUICK_ITEMS:
        keep = df["item_id"].drop_duplicates().iloc[:QUICK_ITEMS]
        df = df[df["item_id"].isin(keep)].reset_index(drop=True)
    return df, proto


def _quiet(threads: int):
    warnings.filterwarnings("ignore")
    for n in ("lightning", "lightning.pytorch", "pytorch_lightning", "gluonts"):
        logging.getLogger(n).setLevel(logging.ERROR)
    torch.set_num_threads(threads)
    return torch


def tsdiff_job(
    name, seed, hp, cache, quick, device, precision, variant, ckpt_dir, threads=2, samplers=None
):
    """Train one tsdiff variant once on the data before the first origin, then backtest it with
    each of its samplers (``SAMPLERS[variant]``).

    variant: ``masked`` (value bins, no covariates), ``flow`` (continuous values, no covariates)
    or ``cov`` (masked, with the protocol's known covariates as future covariates).
    samplers: names of ``SAMPLERS[variant]`` to run (default: all).
    """
    torch = _quiet(threads)
    df, proto = _load(name, cache, quick)
    train, windows = window_splits(df, proto)
    _, y_ref = windows_to_arrays(windows, proto)
    cols = list(proto.target_columns)
    covs = list(proto.known_covariates) if variant == "cov" else []
    gpu = device == "cuda"
    out = {"name": name, "seed": seed, "hp": dict(hp), "orders": {}}
    for prec in [precision, "32-true"] if precision != "32-true" else ["32-true"]:
        cfg = tsdiff_config(
            proto, hp, seed=seed, accelerator="gpu" if gpu else "cpu", precision=prec,
            mode="flow" if variant == "flow" else "masked", future_covariates=covs,
        )  # fmt: skip
        f = Forecaster(cfg)
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            f.fit(train[["item_id", "timestamp", *cols, *covs]], target=cols)
        except Exception as e:  # noqa: BLE001 - bf16 unsupported somewhere: fall back to fp32
            if prec == "32-true":
                raise
            out["precision_error"] = f"{type(e).__name__}: {e}"[:200]
            continue
        out["train_s"] = time.perf_counter() - t0
        out["precision"] = prec
        break
    if gpu:
        torch.cuda.synchronize()
        out["peak_train_mib"] = torch.cuda.max_memory_allocated() / 2**20
    out["steps"] = f.history.get("steps")
    out["temperature"] = f.temperature
    out["calibration"] = f.history.get("calibration")
    full = df[["item_id", "timestamp", *cols, *covs]]
    kw = backtest_kwargs(proto)
    out["inference_precision"] = f.inference_precision
    for model_name, sampler in SAMPLERS[variant].items():
        if samplers is not None and model_name not in samplers:
            continue
        if gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        bt = f.backtest(full, num_samples=NUM_SAMPLES, seed=seed, **sampler, **kw)
        pred_s = time.perf_counter() - t0
        if not np.allclose(bt["y"], y_ref, equal_nan=True):
            raise RuntimeError(f"{name}: tsdiff backtest windows differ from window_splits")
        out["orders"][model_name] = {
            "scores": score(bt["samples"], y_ref),
            "nfe": int(bt["nfe"]),
            "predict_s": pred_s,
            "sampler_s": float(bt["seconds"]),
            "peak_predict_mib": torch.cuda.max_memory_allocated() / 2**20 if gpu else None,
        }
    if ckpt_dir and seed == 0:
        f.save(Path(ckpt_dir) / (name if variant == "masked" else f"{name}-{variant}"))
    out["rss_mib"] = _rss_mib()
    return out


def deepar_job(name, seed, cache, quick, threads=1, max_epochs=30, use_covariates=False):
    _quiet(threads)
    df, proto = _load(name, cache, quick)
    r = peers.deepar(
        df, proto, n_samples=NUM_SAMPLES, seed=seed, quick=quick, max_epochs=max_epochs,
        use_covariates=use_covariates,
    )  # fmt: skip
    _, windows = window_splits(df, proto)
    return {
        "scores": score(r.samples, windows_to_arrays(windows, proto)[1]),
        "train_s": r.fit_seconds,
        "predict_s": r.predict_seconds,
        "rss_mib": _rss_mib(),
    }


def ets_job(name, cache, quick, items=None, channel=None, seed=0, threads=1):
    """ETS on a piece of a data set: a chunk of items, or one channel of a multichannel set."""
    _quiet(threads)
    df, proto = _load(name, cache, quick)
    if items is not None:
        df = df[df["item_id"].isin(items)].reset_index(drop=True)
    if channel is not None:
        proto = dataclasses.replace(proto, target_columns=(channel,))
    seasons = ETS_FIT_SEASONS[name]
    mfl = seasons * proto.season_length if seasons else None
    r = peers.ets(df, proto, n_samples=NUM_SAMPLES, seed=seed, max_fit_length=mfl, quick=quick)
    return {
        "samples": r.samples.astype(np.float32),
        "train_s": r.fit_seconds,
        "predict_s": r.predict_seconds,
        "rss_mib": _rss_mib(),
    }


# ---------------------------------------------------------------------------------- scoring
SCORES = ("wql", "crps", "energy_score", "cov50", "cov80", "cov90", "cov95",
          "calibration_error", "nd")  # fmt: skip


def score(samples: np.ndarray, y: np.ndarray) -> dict:
    """The scores of tsdiff.metrics.evaluate_samples used here (no variogram score, no PIT: they
    cost seconds per call on the multichannel sets)."""
    x = np.asarray(samples, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    n, s, h, c = x.shape
    fx, fy = x.transpose(0, 3, 1, 2), yy.transpose(0, 2, 1)  # [N, C, S, H], [N, C, H]
    out = {
        "wql": M.weighted_quantile_loss(fx, fy),
        "crps": M.normalised_crps(fx, fy),
        "nd": M.nd(fx, fy),
        "calibration_error": M.calibration_error(fx, fy),
    }
    for level in (0.5, 0.8, 0.9, 0.95):
        out[f"cov{round(level * 100)}"] = M.coverage(fx, fy, level)
    jx, jy = x.reshape(n, s, h * c), yy.reshape(n, h * c)
    ok = ~np.isnan(jy).any(-1)
    out["energy_score"] = float(M.energy_score(jx[ok], jy[ok]).mean())
    return {k: float(out[k]) for k in SCORES}


TEXT_FIELDS = {"data", "model", "mem_kind", "hp", "calibration", "precision",
               "inference_precision", "quick"}  # fmt: skip


def read_runs(path: Path) -> list[dict]:
    """The per-seed rows of a forecast.csv (``level`` "seed"; an old forecast_runs.csv without
    that column: every row) with numbers parsed (empty -> None); for --merge."""
    out = []
    with open(path) as fh:
        for r in csv.DictReader(fh):
            if r.pop("level", "seed") != "seed":
                continue
            row = {}
            for k, v in r.items():
                if k in TEXT_FIELDS or k.startswith("machine_") or v == "":
                    row[k] = v if v != "" else None
                else:
                    try:
                        row[k] = float(v)
                    except ValueError:
                        row[k] = v
            row["seed"] = int(row["seed"])
            out.append(row)
    return out


def _mean_sd(vals):
    v = np.asarray([x for x in vals if x is not None and not np.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per (data, model): mean (and sd) over seeds; ratios to DeepAR and seasonal naive."""
    keys = []
    for r in runs:
        if (r["data"], r["model"]) not in keys:
            keys.append((r["data"], r["model"]))
    rows = []
    for data, model in keys:
        rs = [r for r in runs if r["data"] == data and r["model"] == model]
        row = {"data": data, "model": model, "seeds": len(rs)}
        for k in (*SCORES, "nfe", "train_s", "predict_s", "peak_train_mib", "peak_predict_mib",
                  "rss_mib"):  # fmt: skip
            row[k], sd = _mean_sd([r.get(k) for r in rs])
            if k in ("wql", "crps", "cov90"):
                row[k + "_sd"] = sd
        row["predict_ms_per_window"] = 1000 * row["predict_s"] / rs[0]["windows"]
        for k in ("mem_kind", "hp", "windows", "channels", "precision", "inference_precision",
                  "temperature", "steps"):  # fmt: skip
            vals = [r.get(k) for r in rs if r.get(k) is not None]
            if vals:
                row[k] = vals[0] if k != "temperature" else "/".join(str(v) for v in vals)
        rows.append(row)
    for data in dict.fromkeys(r["data"] for r in rows):
        ref = {r["model"]: r for r in rows if r["data"] == data}
        for r in rows:
            if r["data"] != data:
                continue
            d, sn = ref.get("deepar"), ref.get("seasonal_naive")
            for k in ("wql", "crps", "cov90", "train_s", "predict_s"):
                r[f"{k}_vs_deepar"] = r[k] / d[k] if d and d.get(k) else float("nan")
            r["wql_vs_snaive"] = r["wql"] / sn["wql"] if sn else float("nan")
    models = list(dict.fromkeys(r["model"] for r in rows))
    main = [r for r in rows if r["data"] in DATASETS]  # the geomean is over the main sets only
    n_data = len({r["data"] for r in main})
    for model in models:
        rel = [r["wql_vs_snaive"] for r in main if r["model"] == model]
        rel = [x for x in rel if x == x and x > 0]
        rows.append({
            "data": "geomean", "model": model, "seeds": len(rel),
            "wql_vs_snaive": float(np.exp(np.mean(np.log(rel)))) if len(rel) == n_data
            else float("nan"),
        })  # fmt: skip
    return rows


def goals(rows: list[dict], model: str = "tsdiff/entropy") -> list[dict]:
    """Issue 4's goals for the default tsdiff sampler (means over seeds)."""
    per = [r for r in rows if r["model"] == model and r["data"] in DATASETS]
    out = []
    r09 = [(r["data"], r.get("wql_vs_deepar", float("nan"))) for r in per]
    n_ok = sum(v <= 0.9 for _, v in r09)
    out.append({
        "goal": "wQL <= 0.9x DeepAR on >= 3 of 4 data sets",
        "measured": ", ".join(f"{d} {v:.2f}" for d, v in r09) + f" ({n_ok} of {len(r09)})",
        "result": "PASS" if n_ok >= 3 and len(r09) >= 4 else "MISS",
    })  # fmt: skip
    gm = [r for r in rows if r["model"] == model and r["data"] == "geomean"]
    g = gm[0]["wql_vs_snaive"] if gm else float("nan")
    out.append({"goal": "geomean wQL / seasonal naive <= 0.8", "measured": f"{g:.3f}",
                "result": "PASS" if g <= 0.8 else "MISS"})  # fmt: skip
    cov = [(r["data"], r["cov90"]) for r in per]
    out.append({
        "goal": "cov90 in [0.85, 0.95] on every data set",
        "measured": ", ".join(f"{d} {v:.3f}" for d, v in cov),
        "result": "PASS" if cov and all(0.85 <= v <= 0.95 for _, v in cov) else "MISS",
    })  # fmt: skip
    gpu = all(r.get("mem_kind") == "gpu allocated" for r in per)
    mem = [(r["data"], r.get("peak_train_mib"), r.get("peak_predict_mib")) if gpu
           else (r["data"], r.get("rss_mib"), r.get("rss_mib")) for r in per]  # fmt: skip
    out.append({
        "goal": "peak memory of training and of 100-path forecasting < 4 GiB "
        + ("(GPU allocated)" if gpu else "(process RSS, CPU run)"),
        "measured": ", ".join(f"{d} {a:.0f}/{b:.0f} MiB" for d, a, b in mem),
        "result": "PASS" if mem and all(a < 4096 and b < 4096 for _, a, b in mem) else "MISS",
    })  # fmt: skip
    return out


# ---------------------------------------------------------------------------------- driver
def _kill_pool(pool: cf.ProcessPoolExecutor) -> None:
    for p in list(getattr(pool, "_processes", {}).values()):  # our own workers only
        if p.is_alive():
            p.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def protocol_lines(protos: dict, args) -> list[str]:
    lines = []
    for name, p in protos.items():
        w = (
            f"{len(p.test_origins)} shared origins {p.test_origins[0]:%Y-%m-%d %H:%M} ... "
            f"{p.test_origins[-1]:%Y-%m-%d %H:%M}"
            if p.test_origins
            else f"last {p.n_test_windows} window(s) of each series"
        )
        lines.append(
            f"{name}: freq {p.freq}, H {p.prediction_length}, context {p.context_length}, "
            f"season {p.season_length}, channels {list(p.target_columns)}, {w}"
        )
    lines += [
        "training: every model trained once on the rows before the first test origin; "
        "no covariates except in the +cov rows (elecdemand: Temperature, WorkDay; tmy3_drivers: "
        "ghi, dni, dhi, wind_speed, pressure; observed values as oracle forecasts)",
        f"{NUM_SAMPLES} sample paths per window; tsdiff and DeepAR seeds {args.seed_list or args.seeds}; "
        "wQL over q = 0.1..0.9 (gluonts estimator); CRPS = sum CRPS / sum |y|; energy score "
        "on the joint [H*C] path; calibration error over q = 0.05..0.95",
        "tsdiff: entropy order is the default; random / prob / soft (DMax-style soft commitment) "
        "re-sample the same trained model; tsdiff-flow is a separately trained flow-mode model; "
        "TMY3 and Appliances forecast their channels independently (channels=independent, one "
        "shared model with a channel embedding), tsdiff-joint is the joint-channel model beside it; "
        "sampling under bf16 autocast when trained bf16-mixed; "
        "temperature calibrated on validation windows carved from the end of the training part",
        "ETS: ETS(A,Ad,A) (AICc over trend x season for monthly), params estimated on the last "
        f"{ETS_FIT_SEASONS} seasons before the first origin, one model per channel",
        f"DeepAR: gluonts torch, Student-t, {args.deepar_epochs} epochs x 50 batches, no day-of-year for sub-daily, "
        "one global model over (item, channel) series; 1 torch thread per process",
        "peak memory: torch.cuda.max_memory_allocated (tsdiff on GPU); ru_maxrss of the worker "
        "process (CPU peers, tsdiff on CPU)",
    ]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny models, 1 seed")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seeds", type=int, default=3, help="training seeds 0 .. N-1")
    ap.add_argument(
        "--seed-list",
        default=None,
        help="explicit seeds instead, e.g. 2 (a supplement run for --merge)",
    )
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="bf16-mixed", help="tsdiff training precision on GPU")
    ap.add_argument("--gpu-jobs", type=int, default=1, help="tsdiff processes at once")
    ap.add_argument("--cpu-jobs", type=int, default=1, help="peer processes at once")
    ap.add_argument("--max-steps", type=int, default=None, help="override tsdiff steps")
    ap.add_argument("--max-time-s", type=float, default=None, help="tsdiff training time cap")
    ap.add_argument(
        "--hp",
        type=hp_json,
        default=None,
        help="JSON of Forecaster settings over the per-set ones (a probe), e.g. '{\"dropout\": 0.1}'",
    )
    ap.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="stop waiting after this many seconds and report what finished",
    )
    ap.add_argument(
        "--data-cache",
        type=Path,
        default=None,
        help="folder from `python -m benchmarks.datasets --export`",
    )
    ap.add_argument("--save-ckpt", type=Path, default=None, help="save seed-0 tsdiff models here")
    add_out_argument(ap)
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="do not keep the per-seed rows already in OUT/forecast.csv (default: keep those "
        "this run did not measure again)",
    )
    ap.add_argument("--no-peers", action="store_true", help="same as --peers ''")
    ap.add_argument(
        "--peers", default="deepar,ets", help="peer models to run (seasonal naive always)"
    )
    ap.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="a forecast.csv of an earlier run of the same protocol (repeatable): its per-seed "
        "(data, model, seed) rows that this run (or an earlier --merge) lacks are added, each "
        "keeping its own machine columns; with --variants '' --peers '' this only re-reports",
    )
    ap.add_argument("--deepar-epochs", type=int, default=30, help="x 50 batches of 32")
    ap.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="tsdiff models to train: masked (4 samplers), flow, cov (covariate data sets only), "
        "joint (the joint-channel twin of the channel-independent multivariate sets)",
    )
    ap.add_argument(
        "--cov-datasets",
        default=",".join(COV_DATASETS),
        help="data sets of the covariate rows (tsdiff+cov, deepar+cov; masked entropy beside)",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads per tsdiff process")
    ap.add_argument(
        "--samplers",
        default=",".join(SAMPLERS["masked"]),
        help="the masked model's samplers on the first --sampler-seeds seeds",
    )
    ap.add_argument(
        "--sampler-seeds",
        type=int,
        default=None,
        help="run the comparison samplers (random, prob, soft) on the first N seeds only "
        "(default: all seeds); the default entropy sampler runs on every seed",
    )
    args = ap.parse_args(argv)
    args.out = results_dir(args.out, args.quick)
    if args.quick:
        args.seeds = min(args.seeds, 1)
    seeds = (
        [int(x) for x in args.seed_list.split(",") if x]
        if args.seed_list
        else list(range(args.seeds))
    )
    variants = [v for v in args.variants.split(",") if v]
    if unknown := sorted(set(variants) - set(VARIANTS)):
        ap.error(f"--variants: unknown {unknown}; expected some of {list(VARIANTS)}")
    args.samplers = ",".join(sampler_names(args.samplers, ap))
    main_names = [n for n in args.datasets.split(",") if n]
    cov_names = [n for n in args.cov_datasets.split(",") if n]  # deepar+cov; tsdiff+cov if "cov"
    names = list(dict.fromkeys(main_names + cov_names))
    t_start = time.perf_counter()

    data, protos = {}, {}
    for name in names:
        df, proto = _load(name, args.data_cache, args.quick)
        _, windows = window_splits(df, proto)
        data[name] = (df, windows_to_arrays(windows, proto)[1])
        protos[name] = proto
    meta = print_header("forecast", protocol_lines(protos, args), args)
    if args.device == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(0)
        print(f"gpu: {meta['gpu']}")

    ctx = mp.get_context("spawn")
    gpool = cf.ProcessPoolExecutor(args.gpu_jobs, mp_context=ctx, max_tasks_per_child=1)
    cpool = cf.ProcessPoolExecutor(args.cpu_jobs, mp_context=ctx, max_tasks_per_child=1)
    futs: dict[cf.Future, tuple] = {}
    hps = {(n, v): tsdiff_hp(n, args, v) for n in names for v in ("masked", "joint")
           if v != "joint" or n in JOINT_HP}  # fmt: skip
    # priority (the pools are FIFO; with --deadline-s the tail may not finish): seed 0 of the
    # masked model on the main sets, the covariate pairs and flow; then the masked model's other
    # seeds (issue 4's goals are means over seeds); then the other seeds of the rest
    n_all = max(seeds) + 1 if args.sampler_seeds is None else args.sampler_seeds

    def seed_tasks(seed, kinds):
        out = []
        if "masked" in kinds:
            only = tuple(args.samplers.split(",")) if seed < n_all else ("tsdiff/entropy",)
            out += [(seed, n, "masked", only) for n in main_names]
        if "cov" in kinds:
            for n in cov_names:
                if n not in main_names and "masked" in variants:  # its no-covariate twin
                    out.append((seed, n, "masked", ("tsdiff/entropy",)))
                out.append((seed, n, "cov", None))
        if "flow" in kinds:
            out += [(seed, n, "flow", None) for n in main_names]
        if "joint" in kinds:  # the joint twin of the channel-independent multivariate sets
            out += [(seed, n, "joint", None) for n in main_names if n in JOINT_HP]
        return out

    rest = [v for v in variants if v != "masked"]
    tasks = seed_tasks(seeds[0], variants)
    for seed in seeds[1:]:
        tasks += seed_tasks(seed, [v for v in variants if v == "masked"])
    for seed in seeds[1:]:
        tasks += seed_tasks(seed, rest)
    for seed, name, variant, samplers in tasks:
        hp = hps[(name, "joint" if variant == "joint" else "masked")]
        fut = gpool.submit(tsdiff_job, name, seed, hp, args.data_cache, args.quick,
                           args.device, args.precision, variant, args.save_ckpt, args.threads,
                           samplers)  # fmt: skip
        futs[fut] = ("tsdiff", name, seed, variant)
    peers = [] if args.no_peers else [p for p in args.peers.split(",") if p]
    if unknown := sorted(set(peers) - {"deepar", "ets"}):
        ap.error(f"--peers: unknown {unknown}; expected some of ['deepar', 'ets']")
    if "ets" in peers and "appliances" in names:  # the slowest ETS pieces (m = 144) first
        for k, col in enumerate(protos["appliances"].target_columns):
            fut = cpool.submit(ets_job, "appliances", args.data_cache, args.quick,
                               channel=col, seed=k)  # fmt: skip
            futs[fut] = ("ets", "appliances", ("channel", k))
    if "deepar" in peers:
        for name in sorted(names, key=lambda n: n != "elecdemand"):  # longest first
            for seed in seeds:
                futs[cpool.submit(deepar_job, name, seed, args.data_cache, args.quick, 1,
                                  args.deepar_epochs)] = ("deepar", name, seed)  # fmt: skip
                if name in cov_names:
                    futs[cpool.submit(deepar_job, name, seed, args.data_cache, args.quick, 1,
                                      args.deepar_epochs, True)] = (
                        "deepar+cov", name, seed)  # fmt: skip
    for name in [n for n in names if n != "appliances" and "ets" in peers]:
        df, proto = data[name][0], protos[name]
        items = list(df["item_id"].drop_duplicates())
        if len(items) > 1:
            chunks = [items[i : i + 10] for i in range(0, len(items), 10)]
            for k, ch in enumerate(chunks):
                fut = cpool.submit(ets_job, name, args.data_cache, args.quick, items=ch, seed=k)
                futs[fut] = ("ets", name, ("items", k))
        else:
            for k, col in enumerate(proto.target_columns):
                fut = cpool.submit(ets_job, name, args.data_cache, args.quick, channel=col,
                                   seed=k)  # fmt: skip
                futs[fut] = ("ets", name, ("channel", k))
    print(f"submitted {len(futs)} tasks", flush=True)

    results: dict[tuple, dict] = {}
    pending = set(futs)
    while pending:
        left = (
            None if args.deadline_s is None else args.deadline_s - (time.perf_counter() - t_start)
        )
        if left is not None and left <= 0:
            break
        done, pending = cf.wait(pending, timeout=left, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            key = futs[fut]
            try:
                results[key] = fut.result()
                r = results[key]
                extra = f" train {r.get('train_s', 0):.1f}s" if "train_s" in r else ""
                print(f"[{time.perf_counter() - t_start:6.1f}s] done {key}{extra}", flush=True)
            except Exception as e:  # noqa: BLE001 - report and carry on with the rest
                print(f"[{time.perf_counter() - t_start:6.1f}s] FAILED {key}: "
                      f"{type(e).__name__}: {e}", flush=True)  # fmt: skip
    if pending:
        print(f"deadline: {len(pending)} task(s) unfinished: "
              f"{sorted(str(futs[f]) for f in pending)}", flush=True)  # fmt: skip
        _kill_pool(gpool)
        _kill_pool(cpool)
    else:
        gpool.shutdown()
        cpool.shutdown()

    # ------------------------------------------------------------------ score
    runs = []
    for name in names:
        df, y = data[name]
        proto = protos[name]
        base = {"data": name, "windows": y.shape[0], "channels": y.shape[2]}
        sn = seasonal_naive(df, proto, NUM_SAMPLES)
        runs.append({**base, "model": "seasonal_naive", "seed": 0,
                     **score(sn.samples, y), "nfe": float("nan"), "train_s": 0.0,
                     "predict_s": sn.predict_seconds, "mem_kind": "-"})  # fmt: skip
        ets_parts = sorted(
            ((k[2], v) for k, v in results.items() if k[0] == "ets" and k[1] == name),
            key=lambda kv: kv[0][1],
        )
        n_parts = len(list(df["item_id"].drop_duplicates())) if proto.n_test_windows else 0
        expect = -(-n_parts // 10) if n_parts > 1 else len(proto.target_columns)
        if ets_parts and len(ets_parts) == expect:
            if ets_parts[0][0][0] == "items":
                s = np.concatenate([v["samples"] for _, v in ets_parts], 0)
            else:
                s = np.concatenate([v["samples"] for _, v in ets_parts], -1)
            runs.append({
                **base, "model": "ets", "seed": 0, **score(s, y), "nfe": float("nan"),
                "train_s": sum(v["train_s"] for _, v in ets_parts),
                "predict_s": sum(v["predict_s"] for _, v in ets_parts),
                "rss_mib": max(v["rss_mib"] for _, v in ets_parts), "mem_kind": "cpu rss",
                "hp": json.dumps({"fit_seasons": ETS_FIT_SEASONS[name],
                                  "note": "train_s/predict_s summed over pieces"}),
            })  # fmt: skip
        for peer in ("deepar", "deepar+cov"):
            for seed in seeds:
                r = results.get((peer, name, seed))
                if r:
                    runs.append({**base, "model": peer, "seed": seed, **r["scores"],
                                 "nfe": float(proto.prediction_length), "train_s": r["train_s"],
                                 "predict_s": r["predict_s"], "rss_mib": r["rss_mib"],
                                 "mem_kind": "cpu rss"})  # fmt: skip
        for seed, variant in [(s, v) for v in VARIANTS for s in seeds]:
            r = results.get(("tsdiff", name, seed, variant))
            if not r:
                continue
            for model_name, o in r["orders"].items():
                runs.append({
                    **base, "model": model_name, "seed": seed, **o["scores"],
                    "nfe": o["nfe"], "train_s": r["train_s"], "predict_s": o["predict_s"],
                    "sampler_s": o["sampler_s"], "peak_train_mib": r.get("peak_train_mib"),
                    "peak_predict_mib": o["peak_predict_mib"], "rss_mib": r["rss_mib"],
                    "mem_kind": "gpu allocated" if args.device == "cuda" else "cpu rss",
                    "precision": r.get("precision"), "steps": r["steps"],
                    "inference_precision": r.get("inference_precision"),
                    "temperature": r["temperature"],
                    "hp": json.dumps(r["hp"]),
                    "calibration": json.dumps(r["calibration"]),
                })  # fmt: skip
    order_rank = {m: i for i, m in enumerate([
        "tsdiff/entropy", "tsdiff/random", "tsdiff/prob", "tsdiff/soft", "tsdiff-joint/entropy",
        "tsdiff-flow", "tsdiff+cov/entropy", "deepar", "deepar+cov", "ets",
        "seasonal_naive"])}  # fmt: skip
    own = args.out / "forecast.csv"
    kept = [] if args.fresh or not own.is_file() else [own]
    for path in kept + args.merge:
        have = {(r["data"], r["model"], int(r["seed"])) for r in runs}
        extra = [r for r in read_runs(path) if (path in kept or r["data"] in names)
                 and (r["data"], r["model"], int(r["seed"])) not in have]  # fmt: skip
        print(f"{'kept' if path in kept else 'merged'} {len(extra)} run row(s) from {path}")
        runs += extra
    data_order = names + [d for d in dict.fromkeys(r["data"] for r in runs) if d not in names]
    runs.sort(key=lambda r: (data_order.index(r["data"]), order_rank.get(r["model"], 9),
                             r["seed"]))  # fmt: skip
    rows = aggregate(runs)
    meta = {**{f"machine_{k}": v for k, v in meta.items()}, "quick": args.quick}
    table = [{"level": "mean", **r} for r in rows] + [{"level": "seed", **r} for r in runs]
    print(f"wrote {write_csv(args.out, 'forecast', table, meta)}")
    print(f"total wall-clock {time.perf_counter() - t_start:.0f} s")
    if args.quick:
        print("(--quick: tiny models and few items; these numbers are not benchmark results)")

    show = []
    for r in rows:
        if r["data"] == "geomean":
            continue
        mem = (
            r.get("peak_predict_mib") if r.get("mem_kind") == "gpu allocated" else r.get("rss_mib")
        )
        tr = r.get("peak_train_mib") if r.get("mem_kind") == "gpu allocated" else None
        show.append({
            "data": r["data"], "model": r["model"], "n": r["seeds"],
            "wQL": r["wql"], "wQL sd": r.get("wql_sd", float("nan")), "CRPS": r["crps"],
            "ES": r["energy_score"], "cov50": r["cov50"], "cov90": r["cov90"],
            "calib": r["calibration_error"], "NFE": r["nfe"], "train s": r["train_s"],
            "pred s": r["predict_s"],
            "mem MiB train/pred": "-" if mem is None or mem != mem else
            (f"{tr:.0f}/{mem:.0f} gpu" if tr is not None else f"{mem:.0f} rss"),
            "wQL/DeepAR": r.get("wql_vs_deepar", float("nan")),
            "wQL/snaive": r.get("wql_vs_snaive", float("nan")),
        })  # fmt: skip
    geo = [{"model": r["model"], "geomean wQL / seasonal naive": r["wql_vs_snaive"]}
           for r in rows if r["data"] == "geomean"]  # fmt: skip
    print(
        "\nhyperparameters (tsdiff): " + json.dumps({f"{n}/{v}": hp for (n, v), hp in hps.items()})
    )
    print("\ngoals (issue 4, tsdiff/entropy, means over seeds):")
    print(format_table(goals(rows)))
    print()
    print(format_table(geo))
    print()
    print(format_table(show), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
