"""The pretrained tsdiff base on the sets it never saw (issue 23): zero-shot, fine-tuned and
from scratch at the same budgets, against seasonal naive and fracast.

    python -m benchmarks.pretrained_base                    # full run (resumable pieces)
    python -m benchmarks.pretrained_base --quick --base DIR  # smoke run -> .data/bench/quick/
    python -m benchmarks.pretrained_base --sets gasoline --models tsdiff_zeroshot,seasonal_naive
    python -m benchmarks.pretrained_base --merge            # only merge the finished pieces

Sets: :data:`benchmarks.pretrain_split.HELD_OUT` (``--sets``). Models
(:mod:`benchmarks.suite_models`): ``seasonal_naive``, ``fracast`` (zero-shot), ``tsdiff_zeroshot``
(the base, no training), and at every budget B of ``--budgets`` (default 60, 300 s) and every
seed of ``--seeds`` (default 0): ``tsdiff_ft`` (fine-tuned from the base, its default: every weight) and
``tsdiff`` (from scratch), both ``max_time_s=B``; ``--models ...,tsdiff_ft_lora`` adds the LoRA
fine-tune. The base: ``--base DIR`` (default ``$TSDIFF_BASE``, else
the one packaged in tsdiff); it reaches the pieces as ``TSDIFF_BASE``.

The suite's machinery runs it (:mod:`benchmarks.suite`): data and protocol
(``benchmarks.datasets.load``), metrics (:mod:`benchmarks.suite_metrics`), one subprocess per
piece (set, model, budget, seed) with a timeout, written whole under
``.data/bench/pretrained_base/pieces/`` and skipped on rerun (``--retry-failed`` reruns failed
ones). A piece that needs the base carries the first 8 hex digits of its weights' sha256 in its
name, so a new base gets new pieces and the merge reads only the current base's. A failed piece
is a ``failed`` row naming its error, never dropped; a planned piece not run yet is named.

Output: ``benchmarks/results/pretrained_base.csv``: per (set, model, budget) rows (``level``
"set"; mean over seeds), per variant aggregates (``level`` "aggregate": geometric mean over sets
of wQL and MASE relative to seasonal naive) and the issue's goals (``level`` "goal").
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import datasets
from benchmarks import suite_metrics as SM
from benchmarks.common import (
    CACHE,
    QUICK_RESULTS,
    RESULTS,
    format_table,
    print_header,
    quiet,
    write_csv,
)
from benchmarks.pretrain_split import HELD_OUT
from benchmarks.suite import (
    EXIT_UNAVAILABLE,
    UNAVAILABLE,
    piece_arguments,
    read_pieces,
    run_piece,
    run_pieces,
    write_piece,
)
from benchmarks.suite_models import BASE_ENV
from lm_core.checkpoint import CheckpointError
from lm_core.outputs import one_line
from tsdiff.pretrained import load_base

MODELS = ("seasonal_naive", "fracast", "tsdiff_zeroshot", "tsdiff_ft", "tsdiff")
OPTIONAL = ("tsdiff_ft_lora",)  # with --models: LoRA adapters beside the default full fine-tune
BUDGETED = ("tsdiff_ft", "tsdiff_ft_lora", "tsdiff")  # one piece per budget and seed
ON_BASE = ("tsdiff_zeroshot", "tsdiff_ft", "tsdiff_ft_lora")  # their pieces belong to one base
BUDGETS, QUICK_BUDGETS = (60, 300), (10, 20)
QUICK_SETS = ("gasoline", "aus_accommodation")
PIECE_TIMEOUT_S = 1200.0  # plus 3 x the budget (sampling 100 paths of every window included)
PREDICT_GOAL_MS, ZERO_SHOT_GOAL, FT_WIN_GOAL = 50.0, 0.8, 0.8
WORK = CACHE / "pretrained_base" / "pieces"
QUICK_WORK = QUICK_RESULTS / "pretrained_base" / "pieces"
STATS = (*SM.METRICS, "train_s", "predict_ms_per_window", "predict_ms_per_series_window",
         "peak_rss_mib", "threads")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Piece:
    """One unit of work: a model on a set at one budget (0: untrained) with one seed, on the
    base ``base`` (its sha256 prefix; "" for the models that do not read it)."""

    set: str
    model: str
    budget_s: int
    seed: int
    base: str = ""

    @property
    def filename(self) -> str:
        tag = f"__{self.base}" if self.base else ""
        return f"{self.set}__{self.model}__b{self.budget_s}__s{self.seed}{tag}.json"

    @property
    def spec(self) -> str:
        return f"{self.set}:{self.model}:{self.budget_s}:{self.seed}:{self.base}"


def variant(model: str, budget_s) -> str:
    """The label of a (model, budget) row: ``tsdiff_ft@60``; untrained models keep their name."""
    return f"{model}@{int(float(budget_s))}" if model in BUDGETED else model


def plan(sets, models, budgets, seeds, base_tag: str) -> list[Piece]:
    """Pieces in run order: set-major; the budgeted models once per (budget, seed), the others
    once (seed 0)."""
    out = []
    for s in sets:
        for m in models:
            tag = base_tag if m in ON_BASE else ""
            if m in BUDGETED:
                out += [Piece(s, m, int(b), seed, tag) for b in budgets for seed in seeds]
            else:
                out.append(Piece(s, m, 0, 0, tag))
    return out


# ---------------------------------------------------------------------------------- pieces
def _child(piece: Piece, args) -> subprocess.CompletedProcess:
    """Run ``piece`` in a worker subprocess (this module with ``--piece``)."""
    cmd = [sys.executable, "-m", "benchmarks.pretrained_base", "--piece", piece.spec,
           "--work", str(args.work), "--threads", str(args.threads)]  # fmt: skip
    cmd += ["--quick"] if args.quick else []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    env.pop(BASE_ENV, None)
    if args.base:
        env[BASE_ENV] = str(Path(args.base).resolve())
    timeout = args.piece_timeout or PIECE_TIMEOUT_S + 3 * piece.budget_s
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, env=env, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:  # run() has killed the worker
        return subprocess.CompletedProcess(cmd, -9, "", f"timed out after {timeout:.0f} s")


def worker(spec: str, args) -> int:
    """Run one piece (``SET:MODEL:BUDGET:SEED:BASE``) in this process and write its record."""
    quiet(args.threads)
    s, m, b, seed, tag = spec.split(":")
    piece = Piece(s, m, int(b), int(seed), tag)
    try:
        rec = run_piece(piece, args.work, piece.budget_s, args.quick)
    except UNAVAILABLE as e:
        print(one_line(e).splitlines()[0])
        return EXIT_UNAVAILABLE
    if rec["status"] == "ok":
        per = rec["n_windows"] * rec["n_channels"]
        rec["predict_ms_per_series_window"] = rec["predict_ms_per_window"] * rec["n_windows"] / per
    rec["threads"] = torch.get_num_threads()
    write_piece(args.work, piece, rec)
    return 0 if rec["status"] == "ok" else 1


# ---------------------------------------------------------------------------------- merge
def set_rows(records: list[dict]) -> list[dict]:
    """Per (set, model, budget): mean over its ``ok`` seeds of every stat (``_sd`` over seeds
    where there are several), ``failed`` with the first error when no seed ran."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["set"], variant(r["model"], r["budget_s"] or 0)), []).append(r)
    rows = []
    for (s, label), recs in groups.items():
        ok = [r for r in recs if r.get("status") == "ok"]
        row = {"level": "set", "set": s, "variant": label, "model": recs[0]["model"],
               "budget_s": int(float(recs[0]["budget_s"] or 0)), "held_out": s in HELD_OUT,
               "status": "ok" if ok else "failed", "seeds": len(ok),
               "n_windows": recs[0].get("n_windows", "")}  # fmt: skip
        for k in STATS:
            vals = [float(r[k]) for r in ok if r.get(k) is not None]
            row[k] = float(np.mean(vals)) if vals else math.nan
            if k == "threads" and len(set(vals)) == 1:
                row[k] = int(vals[0])
            if k in SM.METRICS and len(recs) > 1:
                row[f"{k}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
        failed = [r for r in recs if r.get("status") != "ok"]
        row["error"] = failed[0].get("error", "") if failed else ""
        rows.append(row)
    order = {m: i for i, m in enumerate(MODELS + OPTIONAL)}
    return sorted(rows, key=lambda r: (r["set"], r["budget_s"] > 0, r["budget_s"],
                                       order.get(r["model"], 99)))  # fmt: skip


def _labelled(rows: list[dict]) -> list[dict]:
    """The ok held-out rows with ``model`` = their variant label (for suite_metrics' helpers)."""
    return [{**r, "model": r["variant"]} for r in rows if r["status"] == "ok" and r["held_out"]]


def aggregate_rows(rows: list[dict]) -> list[dict]:
    """Per variant, over the held-out sets: geometric means of wQL and MASE relative to seasonal
    naive and the sets they were taken over; the median and worst predict ms per series-window."""
    ok = _labelled(rows)
    g_wql = SM.geometric_mean_relative(ok, "wql")
    g_mase = SM.geometric_mean_relative(ok, "mase")
    out = []
    for label in dict.fromkeys(r["variant"] for r in rows):
        ms = [r["predict_ms_per_series_window"] for r in ok if r["model"] == label]
        out.append({
            "level": "aggregate", "set": "ALL", "variant": label,
            "wql_gmean_rel": g_wql.get(label, (math.nan, 0))[0],
            "mase_gmean_rel": g_mase.get(label, (math.nan, 0))[0],
            "n_sets": g_wql.get(label, (math.nan, 0))[1],
            "predict_ms_series_window_median": float(np.median(ms)) if ms else math.nan,
            "predict_ms_series_window_max": float(np.max(ms)) if ms else math.nan,
        })  # fmt: skip
    return out


def _goal(name: str, measured, target: str, met, n_sets: int, detail: str = "") -> dict:
    met_s = "n/a" if met is None else ("yes" if met else "no")
    return {"level": "goal", "set": "ALL", "goal": name, "measured": measured, "target": target,
            "met": met_s, "n_sets": n_sets, "detail": detail}  # fmt: skip


def _sets(some: list[str], of: list[str]) -> str:
    return f"{len(some)}/{len(of)}" + (f" ({','.join(some)})" if some else "")


def _wql(rows: list[dict], label: str) -> dict[str, float]:
    return {r["set"]: r["wql"] for r in rows if r["model"] == label and math.isfinite(r["wql"])}


def goal_rows(rows: list[dict], budgets) -> list[dict]:
    """The issue's goals on the held-out sets (``rows``: :func:`set_rows`); a goal without the
    rows it needs is ``n/a``. Fine-tuned vs scratch compares the same sets (both ok)."""
    ok = _labelled(rows)
    out = []
    zs = "tsdiff_zeroshot"
    g, n = SM.geometric_mean_relative(ok, "wql").get(zs, (math.nan, 0))
    out.append(_goal("zero-shot wQL / seasonal naive (geo mean)", g, f"<= {ZERO_SHOT_GOAL}",
                     g <= ZERO_SHOT_GOAL if n else None, n))  # fmt: skip
    g, n = SM.geometric_mean_relative(ok, "wql", baseline="fracast").get(zs, (math.nan, 0))
    w = SM.wins(ok, zs, "wql").get("fracast", (0, 0))
    out.append(_goal("zero-shot wQL / fracast (geo mean)", g, "< 1", g < 1 if n else None, n,
                     f"zero-shot better on {w[0]}/{w[1]} sets"))  # fmt: skip
    ms = [r["predict_ms_per_series_window"] for r in ok if r["model"] == zs]
    ms = [v for v in ms if math.isfinite(v)]
    threads = sorted({r["threads"] for r in ok if r["model"] == zs and math.isfinite(r["threads"])})
    out.append(_goal(
        "zero-shot predict ms per series-window, 100 paths (worst set)",
        max(ms) if ms else math.nan, f"<= {PREDICT_GOAL_MS:.0f} on 2 cores",
        max(ms) <= PREDICT_GOAL_MS if ms else None, len(ms),
        f"median {np.median(ms):.1f} ms; torch threads {[int(t) for t in threads]}" if ms else "",
    ))  # fmt: skip
    for b in budgets:
        ft, sc = _wql(ok, variant("tsdiff_ft", b)), _wql(ok, variant("tsdiff", b))
        both = sorted(set(ft) & set(sc))
        won = [s for s in both if ft[s] < sc[s]]
        share = len(won) / len(both) if both else math.nan
        out.append(_goal(f"fine-tuned beats scratch at {b} s (share of sets, wQL)", share,
                         f">= {FT_WIN_GOAL:.0%}", share >= FT_WIN_GOAL if both else None,
                         len(both), _sets(won, both)))  # fmt: skip
    if budgets:
        lo, hi = min(budgets), max(budgets)
        ft, sc = _wql(ok, variant("tsdiff_ft", lo)), _wql(ok, variant("tsdiff", hi))
        both = sorted(set(ft) & set(sc))
        reached = [s for s in both if ft[s] <= sc[s]]
        ratio = (
            math.exp(np.mean([math.log(ft[s] / sc[s]) for s in both if ft[s] > 0 and sc[s] > 0]))
            if both else math.nan
        )  # fmt: skip
        out.append(_goal(
            f"fine-tuned at {lo} s reaches scratch at {hi} s (wQL ratio, geo mean)", ratio,
            "<= 1", ratio <= 1 if both else None, len(both),
            "reached on " + _sets(reached, both),
        ))  # fmt: skip
        for s in both:
            out.append({**_goal(f"fine-tuned at {lo} s reaches scratch at {hi} s", ft[s] / sc[s],
                                "<= 1", ft[s] <= sc[s], 1), "set": s})  # fmt: skip
    return out


SET_COLUMNS = ("set", "variant", "status", "seeds", "wql", "mase", "crps", "cov50", "cov90",
               "outside_domain", "train_s", "predict_ms_per_series_window", "threads")  # fmt: skip


def merge(pieces: list[Piece], work: Path, out: Path, budgets, meta: dict) -> list[dict]:
    """Merge the finished ones of ``pieces`` under ``work`` into ``out/pretrained_base.csv`` and
    print the per-set table, then the aggregates and goals; returns the rows."""
    want = {p.filename for p in pieces}
    records = [r for r in read_pieces(work) if Piece(
        r["set"], r["model"], int(float(r["budget_s"] or 0)), int(r["seed"]), r.get("base", "")
    ).filename in want]  # fmt: skip
    done = {Piece(r["set"], r["model"], int(float(r["budget_s"] or 0)), int(r["seed"]),
                  r.get("base", "")).filename for r in records}  # fmt: skip
    if not records:
        raise SystemExit(f"--merge: none of the {len(pieces)} planned pieces is under {work}")
    rows = set_rows(records)
    agg, goals = aggregate_rows(rows), goal_rows(rows, budgets)
    quick = any(r.get("quick") for r in records)
    path = write_csv(out, "pretrained_base", rows + agg + goals, {**meta, "quick": quick})
    print(f"wrote {path}")
    print("\nper set (mean over seeds; wQL etc. as the suite; predict ms per series-window):")
    print(format_table([{c: r.get(c, "") for c in SET_COLUMNS} for r in rows], SET_COLUMNS))
    for r in rows:
        if r["status"] != "ok":
            print(f"  failed: {r['set']} / {r['variant']}: {r['error']}")
    if missing := [p.filename for p in pieces if p.filename not in done]:
        print(f"  not run yet: {len(missing)} planned piece(s): {', '.join(missing[:6])}")
    print("\naggregates over the held-out sets (geometric mean relative to seasonal naive):")
    print(format_table(agg))
    print("\ngoals of issue 23 (held-out sets only):")
    cols = ("goal", "set", "measured", "target", "met", "n_sets", "detail")
    print(format_table([{c: g.get(c, "") for c in cols} for g in goals], cols), flush=True)
    return rows + agg + goals


# ---------------------------------------------------------------------------------- CLI
def _csv_list(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in _csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas: {text!r}"
        ) from None


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="the pretrained tsdiff base on its held-out sets")
    ap.add_argument("--sets", type=_csv_list, default=None, help=f"default: {','.join(HELD_OUT)}")
    ap.add_argument("--models", type=_csv_list, default=None, help=f"default: {','.join(MODELS)}")
    ap.add_argument("--budgets", type=_ints, default=None,
                    help="training budgets in s of tsdiff_ft and tsdiff (default 60,300; "
                    "--quick 10,20)")  # fmt: skip
    ap.add_argument("--seeds", type=_ints, default=[0], help="seeds of the trained models")
    ap.add_argument("--base", default=os.environ.get(BASE_ENV),
                    help=f"base folder (default ${BASE_ENV}, else the packaged base)")  # fmt: skip
    timeout = f"default {PIECE_TIMEOUT_S:.0f} + 3 x its budget"
    return piece_arguments(ap, WORK, threads=2, timeout_default=timeout)


def _base_meta(folder, models) -> dict:
    """Name and sha256 prefix of the base (empty when no model reads it); one line on error."""
    if not set(models) & set(ON_BASE):
        return {"base": "", "base_sha256": ""}
    try:
        base = load_base(folder)
    except CheckpointError as e:
        raise SystemExit(f"--base: {one_line(e)}") from None
    return {"base": base.meta.get("name", "packaged"), "base_sha256": base.sha256[:8]}


def main(argv=None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    args.work = args.work or (QUICK_WORK if args.quick else WORK)
    args.out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    if args.piece:
        return worker(args.piece, args)
    sets = args.sets or list(QUICK_SETS if args.quick else HELD_OUT)
    models = args.models or list(MODELS)
    budgets = args.budgets or list(QUICK_BUDGETS if args.quick else BUDGETS)
    if unknown := [m for m in models if m not in MODELS + OPTIONAL]:
        ap.error(f"--models: unknown {unknown}; expected some of {list(MODELS + OPTIONAL)}")
    if unknown := [s for s in sets if s not in datasets.LOADERS]:
        ap.error(f"--sets: unknown {unknown}; expected some of {list(datasets.LOADERS)}")
    if bad := [b for b in budgets if b <= 0]:
        ap.error(f"--budgets: expected positive seconds, got {bad}")
    meta = _base_meta(args.base, models)
    print_header("pretrained_base", [
        f"sets {sets} (held out from pretraining: {[s for s in sets if s in HELD_OUT]})",
        f"models {models}; budgets {budgets} s; seeds {args.seeds}; 100 paths",
        f"base {meta['base'] or '-'} ({args.base or 'packaged'}; sha256 {meta['base_sha256']}...)",
        f"one subprocess per piece, {args.threads} torch thread(s); work {args.work}",
    ])  # fmt: skip
    pieces = plan(sets, models, budgets, args.seeds, meta["base_sha256"])
    if not args.merge:
        print(f"== {len(pieces)} pieces ==", flush=True)
        t0 = time.perf_counter()
        run_pieces(pieces, args, child=_child)
        print(f"pieces done in {time.perf_counter() - t0:.0f} s wall", flush=True)
    merge(pieces, args.work, args.out, budgets, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
