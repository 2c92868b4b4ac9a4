"""Scenario rollouts against a known ground truth (SYNTHETIC heated-building simulator).

    python -m benchmarks.scenarios --threads 1 --seed N    # N = 0, 1, 2; ~20 min each (3 members)
    python -m benchmarks.scenarios --summarize default     # mean, sd over the seeds' rows
    python -m benchmarks.scenarios --quick                 # smoke run, writes .data/bench/quick/

Protocol: tsdiff.simulators.make_dataset (SYNTHETIC: the effect of every heating plan is known)
with 12 buildings x 60 days, hourly (flags); tsdiff trained on all but the last 15 days with
``heating`` (the action) and ``t_out`` (the weather, known in the future) as future covariates,
H = 24, L = 72, ``covariate_scaling="global"`` and ``scale_features=True`` (the settings
recommended for rollouts; ``--covariate-scaling context --no-scale-features`` gives the
per-window scaling of the forecasting benchmarks), at most 3000 steps (``max_time_s`` keeps the
library's default, 300 s for the whole fit: about 950 steps on one quiet thread, fewer under
load; ``train_steps`` records what member 0 trained), then ``calibration="spread"``
(``--calibration``: a centre-preserving spread factor fitted on validation windows, which leaves
the plan means and so the effects as the model estimated them), fitted on the windows of the
training frame where the recorded heating was held longest (``--calibration-windows held``,
tsdiff.rollout_calibration; ``policy``: fit()'s own validation windows). Held-out histories: 3
origins per building in the last 13 days. Plans: ``off`` (u = 0), ``half`` (u = 0.5), ``full``
(u = 1), each held constant over the whole rollout (the 1x block: held 24 h, the 2x block: 48 h;
the training policy held a level 2-8 h), and ``evening`` (a schedule: u = 1 from 16:00 to 22:00,
else 0.2). For each history and plan, rollouts with common random numbers
across plans against 1000 simulator futures: 200 paths over 4x the horizon (``--paths``) and, for
the goals, 1000 paths over the first horizon (``--effect-paths``: with 200 paths the Monte-Carlo
error of the path mean adds about half a point to the effect error, so 200-path runs of one
model scatter by about half a point around the 5 % goal):

- CRPS / oracle: mean CRPS of the rollout against simulator draws, over the oracle's own
  (the simulator's distribution scored against itself), per horizon block; goal <= 1.2;
- energy score of the whole path against simulator draws, and the oracle's;
- effect error: sum |estimated - true| / sum |true| of the difference of means plan - off, per
  step (the true means are exact for these linear dynamics); goal <= 5 % (issue 22: constant
  plans held 24-48 h; the 1x row also counts the evening schedule);
- cov90: share of simulator futures inside the rollout's central 90 % interval; goal 0.85-0.95;
- bias_PLAN: signed bias of the plan's mean path, sum (estimated - true mean) over the steps and
  histories, over the mean sum |true effect| of the plans against ``off``; goal within +-3 %;
- effect_cov90_model (1x and 2x rows): share of (history, plan != off) cases whose 90 % model
  interval of the effect (difference of horizon means against ``off``) covers the true effect,
  from an ensemble of ``--members`` K models trained with seeds seed + 1000 i (tsdiff.effects:
  K trainings, one rollout of 2x the horizon with ``--interval-paths`` paths per member);
  ``effect_cov90_mc`` the same for the Monte-Carlo interval of the pooled paths, and
  ``effect_err_ens`` the ensemble mean's effect error; goal 0.85-0.95. ``--bootstrap``: members
  1..K-1 also train on a bootstrap resample of the buildings (the second mechanism).

The long-horizon curve repeats the CRPS ratio at 1x, 2x and 4x the trained horizon (blocks
appended). Writes its rows into benchmarks/results/scenarios.csv under (``--variant``, seed),
replacing the rows of the same variant and seed and keeping the others, and scenarios.png for
the default variant's seed 0. A seed changes both the simulated world and the model; the goals
are judged on the mean over seeds (EVALUATION.md: at least 3), which ``--summarize VARIANT``
computes from the variant's per-seed rows (rows with seed ``mean``).
"""

from __future__ import annotations

import argparse
import datetime
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import base_parser, finish, print_header, save_png, setup_torch
from tsdiff import Forecaster
from tsdiff.effects import effect_intervals, resample_items, rollout_ensemble
from tsdiff.scenarios import rollout
from tsdiff.simulators import make_dataset, plan_frame
from tsdiff.support import ExtrapolationWarning

PLANS = ("off", "half", "full", "evening")


def plan_actions(name: str, steps: pd.DatetimeIndex) -> np.ndarray:
    if name == "off":
        return np.zeros(len(steps))
    if name == "half":
        return np.full(len(steps), 0.5)
    if name == "full":
        return np.ones(len(steps))
    hour = steps.hour.to_numpy()
    # row t carries the action of hour t - 1 (see simulators.make_dataset)
    return np.where((hour >= 17) & (hour <= 23), 1.0, 0.2)


def mean_crps_vs_draws(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """E|X - Y| - 0.5 E|X - X'| per step: x [S, H] model paths, y [M, H] truth draws -> [H]."""
    xs = np.sort(x, axis=0)
    S = xs.shape[0]
    w = (2 * np.arange(1, S + 1) - S - 1)[:, None]
    spread = (xs * w).sum(0) / (S * S)
    # E|X - Y| via sorted y and searchsorted would be faster; sizes here are small
    return np.abs(x[:, None, :] - y[None, :, :]).mean((0, 1)) - spread


def energy_vs_draws(x: np.ndarray, y: np.ndarray) -> float:
    """E||X - Y|| - 0.5 E||X - X'|| for paths x [S, D], y [M, D]."""
    xy = np.linalg.norm(x[:, None] - y[None], axis=-1).mean()
    xx = np.linalg.norm(x[:, None] - x[None], axis=-1).mean()
    return float(xy - 0.5 * xx)


def score_block(acc: dict, x: np.ndarray, truth: dict, exact: dict, sl: slice) -> None:
    """Add one history's scores over the steps ``sl`` to ``acc``: x [A, S, steps] rollout paths
    of the PLANS, truth[plan] [M, steps] simulator draws, exact[plan] [steps] true means."""
    for a, p in enumerate(PLANS):
        xs, ys = x[a][:, sl], truth[p][:, sl]
        acc["crps"].append(mean_crps_vs_draws(xs, ys[:200]).mean())
        acc["oracle"].append(mean_crps_vs_draws(ys[200:400], ys[:200]).mean())
        acc["es"].append(energy_vs_draws(xs, ys[:200]))
        acc["es_oracle"].append(energy_vs_draws(ys[200:400], ys[:200]))
        lo, hi = np.quantile(xs, [0.05, 0.95], axis=0)
        acc["cov"].append(((ys >= lo) & (ys <= hi)).mean())
        acc[f"bias_{p}"].append((xs.mean(0) - exact[p][sl]).sum())
        if p != "off":
            est = xs.mean(0) - x[0][:, sl].mean(0)
            true = exact[p][sl] - exact["off"][sl]
            acc["err"].append(np.abs(est - true).sum())
            acc["true"].append(np.abs(true).sum())


def score_intervals(acc: dict, x: np.ndarray, members: np.ndarray, exact: dict, sl: slice):
    """Add one history's effect-interval coverage over the steps ``sl``: x [A, K * S, steps]
    pooled ensemble paths of the PLANS (members [K * S]), exact[plan] [steps] true means."""
    e = effect_intervals(x[:, :, sl].mean(-1), 0, members)
    for a, p in enumerate(PLANS[1:], start=1):
        true = float(np.mean(exact[p][sl] - exact["off"][sl]))
        acc["icov"].append(e["low_model"][a] <= true <= e["high_model"][a])
        acc["icov_mc"].append(e["low"][a] <= true <= e["high"][a])
        acc["ens_err"].append(abs(e["effect"][a] - true))
        acc["ens_true"].append(abs(true))


def new_acc() -> dict:
    keys = ["crps", "oracle", "es", "es_oracle", "cov", "err", "true", "icov", "icov_mc"]
    return {k: [] for k in [*keys, "ens_err", "ens_true", *(f"bias_{p}" for p in PLANS)]}


GOALS = {
    "effect_err": (0.0, 0.05), "cov90": (0.85, 0.95), "crps_ratio": (0.0, 1.2),
    "effect_cov90_model": (0.85, 0.95),
}  # fmt: skip
"""Goal ranges, judged at 1x (the effect rollout, the first row of a run; the model interval's
coverage on the 1x row of the ensemble); bias_PLAN: within +-BIAS_GOAL."""

BIAS_GOAL = 0.03


def goal_notes(row: dict, what: str) -> list[str]:
    """PASS / MISS lines for the goals of one 1x row (goals whose column it lacks: skipped)."""
    out = []
    for p in PLANS:
        b = row.get(f"bias_{p}")
        if b is not None and np.isfinite(b):
            ok = abs(b) <= BIAS_GOAL
            out.append(f"goal |bias_{p}| <= {BIAS_GOAL} ({what}): {'PASS' if ok else 'MISS'} "
                       f"({b:+.3f})")  # fmt: skip
    for key, (lo, hi) in GOALS.items():
        if key not in row or not np.isfinite(row[key]):
            continue
        ok = lo <= row[key] <= hi
        out.append(f"goal {key} in [{lo}, {hi}] at 1x ({what}): {'PASS' if ok else 'MISS'} "
                   f"({row[key]:.3f})")  # fmt: skip
    return out


def first_row(frame: pd.DataFrame) -> dict:
    """The goals' row of a run: its first (1x) row, with the ensemble's interval coverage of
    the 1x row of the long rollout when the first has none."""
    row = frame.iloc[0].to_dict()
    if "effect_cov90_model" in frame and not np.isfinite(row.get("effect_cov90_model", np.nan)):
        one = frame[frame.horizon.astype(str).str.startswith("1x")]["effect_cov90_model"].dropna()
        if len(one):
            row["effect_cov90_model"] = float(one.iloc[0])
    return row


def summarize(variant: str, out_dir: Path) -> int:
    """Mean and sd over seeds of one variant's per-seed rows of ``out_dir/scenarios.csv``.

    Rows are matched on (horizon, paths); the goals are judged on the mean over seeds of the
    first row (1x, the effect rollout), with each seed's own verdict printed beside it. The means
    are written back into the same CSV as the variant's rows with seed ``mean``.
    """
    path = Path(out_dir) / "scenarios.csv"
    if not path.is_file():
        raise SystemExit(f"--summarize {variant}: {path} does not exist (run the seeds first)")
    table = pd.read_csv(path, dtype={"seed": str, "variant": str})
    for col in ("variant", "seed", "horizon", "paths", "effect_err", "cov90", "crps_ratio"):
        if col not in table:
            raise SystemExit(f"--summarize: {path} has no column {col!r} (not a scenarios CSV)")
    mine = table[(table.variant == variant) & (table.seed != "mean")].copy()
    if mine.empty:
        known = sorted(table.variant.dropna().unique())
        raise SystemExit(f"--summarize {variant}: no per-seed rows of that variant in {path}; "
                         f"variants there: {known}")  # fmt: skip
    runs = [g for _, g in mine.groupby("seed", sort=False)]
    seeds = [int(g["seed"].iloc[0]) for g in runs]
    mine["energy_ratio"] = mine["energy"] / mine["energy_oracle"]
    keys = list(runs[0][["horizon", "paths"]].itertuples(index=False, name=None))
    extra = [
        m for m in mine.columns
        if m.startswith(("bias_", "effect_cov90", "effect_err_ens")) and not m.endswith("_sd")
    ]  # fmt: skip
    metrics = ("crps_ratio", "energy_ratio", "effect_err", "cov90", *extra)
    rows = []
    for h, n in keys:
        grp = mine[(mine.horizon == h) & (mine.paths == n)]
        row = {"variant": variant, "seed": "mean", "horizon": h, "paths": int(n),
               "seeds": len(grp)}  # fmt: skip
        for m in metrics:
            row[m] = float(grp[m].mean())
            row[m + "_sd"] = float(grp[m].std(ddof=1)) if len(grp) > 1 else float("nan")
        rows.append(row)
    spreads = [float(g["spread"].iloc[0]) if "spread" in g else 1.0 for g in runs]
    notes = [
        f"variant {variant}; seeds {seeds}; temperatures "
        f"{[float(g['temperature'].iloc[0]) for g in runs]}; spreads {spreads}"
    ]
    for seed, frame in zip(seeds, runs, strict=True):
        notes += [f"seed {seed}: " + n for n in goal_notes(first_row(frame), "this seed")]
    notes += goal_notes(first_row(pd.DataFrame(rows)), f"mean over {len(runs)} seeds")
    meta = {
        "date": f"{datetime.datetime.now():%Y-%m-%d %H:%M}",
        "sources": f"variant {variant}, seeds {' '.join(map(str, seeds))}",
    }
    finish("scenarios", rows, list(rows[0]), out_dir, meta, notes, key=("variant", "seed"))
    return 0


def load_or_fit(args, train: pd.DataFrame, steps: int, i: int) -> Forecaster:
    """Ensemble member ``i`` (seed ``args.seed + 1000 i``; member 0: ``args.seed``), loaded from
    ``--ckpt`` (member i > 0: ``CKPT_m{i}``) when saved there, else trained (and saved there),
    then calibrated on the ``--calibration-windows``."""
    path = None
    if args.ckpt:
        path = args.ckpt if i == 0 else args.ckpt.with_name(f"{args.ckpt.name}_m{i}")
    if path is not None and (path / "config.json").is_file():
        f = Forecaster.load(path)
        print(f"loaded {path} (trained {f.history.get('steps')} steps)")
        if f.config.calibration != args.calibration and args.calibration_windows == "policy":
            f.recalibrate(train, args.calibration)  # on the windows fit() held out
    else:
        f = Forecaster(
            prediction_length=24, context_length=72, freq="h", patch_size=8, d_model=96,
            n_layers=3, batch_size=64, max_steps=steps, lr=2e-3,
            future_covariates=["heating", "t_out"],
            accelerator="gpu" if args.device == "cuda" else "cpu", progress=False,
            seed=args.seed + 1000 * i, scale_features=args.scale_features,
            covariate_scaling=args.covariate_scaling, dropout=args.dropout,
            calibration=args.calibration,
        )  # fmt: skip
        data = resample_items(train, f.config.seed) if args.bootstrap and i else train
        f.fit(data, target="indoor")
        if path is not None:
            f.save(path)
    if args.calibration_windows == "held":
        f.recalibrate_rollouts(train, calibration=args.calibration)
    return f


def main(argv=None) -> int:
    ap = base_parser(__doc__)
    ap.add_argument("--steps", type=int, default=3000, help="training steps")
    ap.add_argument("--buildings", type=int, default=12, help="simulated buildings")
    ap.add_argument("--days", type=int, default=60, help="simulated days per building")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--scale-features",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give the denoiser the context loc/scale of the target (TSModelConfig)",
    )
    ap.add_argument(
        "--covariate-scaling",
        default="global",
        choices=["context", "global"],
        help="how heating and t_out are standardised (ForecasterConfig.covariate_scaling)",
    )
    ap.add_argument(
        "--dropout", type=float, default=0.0, help="residual dropout (ForecasterConfig.dropout)"
    )
    ap.add_argument(
        "--paths", type=int, default=200, help="rollout paths per plan (the long-horizon curve)"
    )
    ap.add_argument(
        "--effect-paths",
        type=int,
        default=1000,
        help="paths per plan of a separate 1x rollout for the goals (0: use --paths)",
    )
    ap.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature (default: the one calibrated after training)",
    )
    ap.add_argument(
        "--calibration",
        default="spread",
        choices=["temperature", "spread", "both"],
        help="what is fitted on validation windows after training (ForecasterConfig.calibration); "
        "a loaded checkpoint calibrated otherwise is recalibrated on the same windows",
    )
    ap.add_argument(
        "--calibration-windows",
        default="held",
        choices=["held", "policy"],
        help="where the calibration is fitted: windows of the training frame where heating was "
        "held longest (tsdiff.rollout_calibration) or fit()'s validation windows",
    )
    ap.add_argument(
        "--members",
        type=int,
        default=3,
        help="ensemble size K for the effect intervals (model 0 is the one scored above; 1: none)",
    )
    ap.add_argument(
        "--bootstrap",
        action="store_true",
        help="members 1..K-1 also train on a bootstrap resample of the buildings "
        "(tsdiff.effects.resample_items); member 0, the scored model, on all",
    )
    ap.add_argument(
        "--interval-paths", type=int, default=200, help="paths per member for the effect intervals"
    )
    ap.add_argument(
        "--ckpt",
        type=Path,
        default=None,
        help="load the forecaster from here when it exists, else train and save it here",
    )
    ap.add_argument(
        "--variant",
        default="default",
        help="name of this run's rows in scenarios.csv (with the seed, the rows it replaces): "
        "'default' for the defaults, another name for a run with other settings (an A/B run)",
    )
    ap.add_argument(
        "--summarize",
        default=None,
        metavar="VARIANT",
        help="no run: mean and sd over the per-seed rows of VARIANT in scenarios.csv, goals on "
        "the mean; written back as that variant's rows with seed 'mean'",
    )
    args = ap.parse_args(argv)
    if args.summarize:
        return summarize(args.summarize, args.out)
    setup_torch(args.threads, args.device)
    n_b, days, steps = (6, 40, 200) if args.quick else (args.buildings, args.days, args.steps)
    train_days = days - 15
    H, L, S, M = 24, 72, args.paths, 1000
    E = 0 if args.quick or args.effect_paths == S else args.effect_paths  # 0: no extra rollout
    horizons = (1, 2) if args.quick else (1, 2, 4)
    meta = print_header(
        "scenarios",
        [
            "SYNTHETIC data: tsdiff.simulators heated building, known action effects",
            f"{n_b} buildings x {days} days hourly; train on days 1-{train_days}",
            f"H={H} L={L}; {S} rollout paths vs {M} simulator futures; plans {PLANS}",
            f"training steps {steps}, seed {args.seed}, dropout {args.dropout}, "
            f"scale_features {args.scale_features}, covariate_scaling {args.covariate_scaling}",
        ],
        args,
    )
    df, building = make_dataset(n_buildings=n_b, n_hours=24 * days, seed=args.seed)
    start = df.timestamp.min()
    train = df[df.timestamp < start + pd.Timedelta(days=train_days)]
    K = 2 if args.quick and args.members > 1 else args.members
    t0 = time.perf_counter()
    members = [load_or_fit(args, train, steps, i) for i in range(K)]
    f = members[0]
    fit_s = time.perf_counter() - t0
    if args.temperature is not None:
        f.temperature = args.temperature
    print(
        f"trained {f.history['steps']} steps in {fit_s:.0f} s, temperature {f.temperature}, "
        f"spread {f.spread}",
        flush=True,
    )

    rng = np.random.default_rng(123)
    keys = ([(1, E)] if E else []) + [(k, S) for k in horizons]
    per_h = {key: new_acc() for key in keys}
    t_roll = t_ens = 0.0
    for item, g in df.groupby("item_id"):
        g = g.reset_index(drop=True)
        for _ in range(3):
            origin = int(rng.integers(24 * (train_days + 2), 24 * days - 4 * H - 1))
            hist = g.iloc[:origin]
            fut_idx = g.timestamp.iloc[origin : origin + max(horizons) * H]
            t_out = g.t_out.iloc[origin : origin + max(horizons) * H].to_numpy()
            T0 = g.indoor.iloc[origin - 1]
            plans = {
                p: plan_frame(
                    item,
                    pd.DatetimeIndex(fut_idx),
                    plan_actions(p, pd.DatetimeIndex(fut_idx)),
                    t_out,
                )
                for p in PLANS
            }
            t1 = time.perf_counter()
            with warnings.catch_warnings():  # held 24-96 h: beyond the policy's holds, on purpose
                warnings.simplefilter("ignore", ExtrapolationWarning)
                sc = rollout(f, hist, plans, horizon=max(horizons) * H, num_samples=S,
                             seed=args.seed)  # fmt: skip
            t_roll += time.perf_counter() - t1
            x = sc.samples[item][..., 0]  # [A, S, 4H]
            truth = {
                p: building.simulate(T0, t_out, plans[p].heating.to_numpy(), M, rng) for p in PLANS
            }
            exact = {p: building.mean_path(T0, t_out, plans[p].heating.to_numpy()) for p in PLANS}
            for k in horizons:
                sl = slice((k - 1) * H, k * H)
                score_block(per_h[(k, S)], x, truth, exact, sl)
            if E:  # the effect at 1x with many paths: a separate rollout of the first block
                t1 = time.perf_counter()
                first = {p: fr.iloc[:H] for p, fr in plans.items()}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExtrapolationWarning)
                    sc = rollout(f, hist, first, horizon=H, num_samples=E, seed=args.seed)
                t_roll += time.perf_counter() - t1
                score_block(per_h[(1, E)], sc.samples[item][..., 0], truth, exact, slice(0, H))
            if K > 1:  # the ensemble's effect intervals over the first two blocks
                t1 = time.perf_counter()
                two = {p: fr.iloc[: 2 * H] for p, fr in plans.items()}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExtrapolationWarning)
                    se = rollout_ensemble(members, hist, two, horizon=2 * H,
                                          num_samples=args.interval_paths, seed=args.seed)  # fmt: skip
                t_ens += time.perf_counter() - t1
                for k in (1, 2):
                    sl = slice((k - 1) * H, k * H)
                    score_intervals(per_h[(k, S)], se.samples[item][..., 0], se.members, exact, sl)
    rows = []
    for k, n_paths in keys:
        a = per_h[(k, n_paths)]
        rows.append({
            "seed": args.seed,
            "horizon": f"{k}x ({(k - 1) * H + 1}-{k * H} h)" if k > 1 else f"1x (1-{H} h)",
            "paths": n_paths,
            "crps": float(np.mean(a["crps"])), "crps_oracle": float(np.mean(a["oracle"])),
            "crps_ratio": float(np.mean(a["crps"]) / np.mean(a["oracle"])),
            "energy": float(np.mean(a["es"])), "energy_oracle": float(np.mean(a["es_oracle"])),
            "effect_err": float(np.sum(a["err"]) / np.sum(a["true"])),
            "cov90": float(np.mean(a["cov"])),
            **{f"bias_{p}": float(np.sum(a[f"bias_{p}"]) / (np.sum(a["true"]) / (len(PLANS) - 1)))
               for p in PLANS},
            "effect_cov90_model": float(np.mean(a["icov"])) if a["icov"] else float("nan"),
            "effect_cov90_mc": float(np.mean(a["icov_mc"])) if a["icov"] else float("nan"),
            "effect_err_ens": float(np.sum(a["ens_err"]) / np.sum(a["ens_true"]))
            if a["icov"] else float("nan"),
        })  # fmt: skip
    first = first_row(pd.DataFrame(rows))
    notes = goal_notes(first, f"{first['paths']} paths, seed {args.seed}") + [
        f"fit {fit_s:.0f} s ({K} members); rollouts {t_roll:.0f} s for {n_b * 3} histories x "
        f"{len(PLANS)} plans x ({S} paths over {max(horizons)}x"
        + (f" + {E} paths over 1x)" if E else ")")
        + (f"; ensemble rollouts {t_ens:.0f} s ({K} x {args.interval_paths} paths over 2x)"
           if K > 1 else ""),
        "spreads " + ", ".join(f"{m.spread:g}" for m in members) + "; calibration windows "
        f"{args.calibration_windows}: "
        + str(f.history.get("rollout_calibration", "fit()'s validation windows")),
    ]  # fmt: skip
    try:
        import matplotlib  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        fig, ax = plt.subplots(figsize=(5, 3.2))
        curve = [r for r in rows if r["paths"] == S]
        ax.plot([r["horizon"].split()[0] for r in curve], [r["crps_ratio"] for r in curve], "o-")
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.set_ylabel("CRPS / oracle CRPS")
        ax.set_title("Rollout quality vs horizon (synthetic building)")
        fig.tight_layout()
        if args.variant == "default" and args.seed == 0:  # the picture the README shows
            save_png(fig, args.out, "scenarios")
    except ImportError:
        pass
    meta.update(
        train_steps=f.history.get("steps", steps), max_steps=steps, fit_seconds=round(fit_s, 1),
        temperature=f.temperature,
        spread=f.spread, calibration=f.config.calibration, effect_paths=E, members=K,
        calibration_windows=args.calibration_windows, interval_paths=args.interval_paths,
    )  # fmt: skip
    rows = [{"variant": args.variant, **r} for r in rows]
    finish("scenarios", rows, list(rows[0]), args.out, meta, notes, key=("variant", "seed"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
