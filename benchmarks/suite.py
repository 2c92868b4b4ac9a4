"""The forecasting suite: every model on every data set under one protocol, run in pieces.

    python -m benchmarks.suite                      # full run (hours on 2 cores; resumable)
    python -m benchmarks.suite --quick              # smoke run in minutes -> .data/bench/quick/
    python -m benchmarks.suite --sets tmy3 --models tsdiff,deepar --seeds 0 --budget-s 120
    python -m benchmarks.suite --merge              # only merge the finished pieces

Protocol: each set's :class:`~tsdiff.data.protocol.Protocol` (``benchmarks.datasets.load``):
models train on the rows before each item's first test origin and forecast every test window
(``window_splits``), 100 sample paths; the models and their defaults are in
:mod:`benchmarks.suite_models`, the metrics in :mod:`benchmarks.suite_metrics`.

A piece is one (set, model, seed): it runs in its own subprocess (its peak RSS is measured and a
crash stays contained) and is written whole as ``SET__MODEL__sSEED.json`` under
``.data/bench/suite/pieces/`` (``--work``); a rerun skips finished pieces, so a killed run
resumes. A model that fails on a set gives a ``failed`` piece with its error's first line; a set
whose package file is missing is skipped with one line. Neither stops the suite. The merge writes
``suite.csv`` (per set x model rows, mean and sd over seeds, and per model aggregate rows) and
prints the headline table. ``--quick``: tiny subsets of three sets, 20 s budgets, seed 0, written
to ``.data/bench/quick/`` (``--out`` to put the CSV elsewhere).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import datasets
from benchmarks import suite_metrics as SM
from benchmarks.common import (
    CACHE,
    QUICK_RESULTS,
    RESULTS,
    _atomic_file,
    format_table,
    quiet,
    write_csv,
)
from benchmarks.suite_models import MODELS, SEEDED, run, training_budget, windows
from lm_core.outputs import one_line
from tsdiff.data.protocol import window_splits, windows_to_arrays
from tsdiff.metrics import domain_lower_bounds


class _Unavailable(Exception):
    """A data set whose package file is missing (until benchmarks.datasets defines its own)."""


SUITE = getattr(datasets, "SUITE", ("us_employment", "elecdemand", "tmy3", "appliances"))
DatasetUnavailable = getattr(datasets, "DatasetUnavailable", _Unavailable)
UNAVAILABLE = (DatasetUnavailable, FileNotFoundError, ModuleNotFoundError)
QUICK_SETS = ("us_employment", "elecdemand", "tmy3")
QUICK_BUDGET_S = 20.0
QUICK_PIECE_TIMEOUT_S = 240.0
QUICK_ITEMS, QUICK_WINDOWS, QUICK_CHANNELS = 6, 4, 2
WORK = CACHE / "suite" / "pieces"
QUICK_WORK = QUICK_RESULTS / "suite" / "pieces"
EXIT_UNAVAILABLE = 3


@dataclasses.dataclass(frozen=True)
class Piece:
    """One unit of work: a model on a set with one seed."""

    set: str
    model: str
    seed: int

    @property
    def filename(self) -> str:
        return f"{self.set}__{self.model}__s{self.seed}.json"


def plan(sets, models, seeds) -> list[Piece]:
    """Pieces in run order: set-major; the trained deep models once per seed, the others once."""
    return [
        Piece(s, m, seed) for s in sets for m in models for seed in (seeds if m in SEEDED else [0])
    ]


def write_piece(work: Path, piece: Piece, record: dict) -> Path:
    """Write a piece's record as JSON, whole (temporary file in ``work``, then rename); the
    piece's own fields (set, model, seed, ...) win over the record's."""
    Path(work).mkdir(parents=True, exist_ok=True)
    text = json.dumps({**record, **dataclasses.asdict(piece)}, indent=1, default=float)
    return _atomic_file(Path(work), piece.filename, lambda tmp: Path(tmp).write_text(text))


def read_pieces(work: Path) -> list[dict]:
    """Every finished piece record under ``work`` (sorted by file name)."""
    return [json.loads(p.read_text()) for p in sorted(Path(work).glob("*__*__s*.json"))]


def quick_subset(df, proto):
    """A smoke-run cut: the first items, windows and channels (not the protocol)."""
    keep = df["item_id"].drop_duplicates().iloc[:QUICK_ITEMS]
    df = df[df["item_id"].isin(keep)].reset_index(drop=True)
    proto = dataclasses.replace(
        proto,
        test_origins=proto.test_origins[-QUICK_WINDOWS:],
        target_columns=proto.target_columns[:QUICK_CHANNELS],
    )
    return df, proto


class ForecastCache:
    """The statsforecast members' quantile forecasts of a set, kept beside the pieces (``.npz``)
    so that the ensemble piece reuses them."""

    def __init__(self, work: Path, set_name: str):
        self.folder, self.set = Path(work) / "forecasts", set_name

    def _path(self, model: str) -> Path:
        return self.folder / f"{self.set}__{model}.npz"

    def failure(self, model: str) -> str | None:
        """The error of ``model``'s failed piece on this set (seed 0), if it failed."""
        path = self.folder.parent / Piece(self.set, model, 0).filename
        rec = json.loads(path.read_text()) if path.is_file() else {}
        return rec.get("error", "failed") if rec.get("status") == "failed" else None

    def get(self, model: str) -> SM.Forecast | None:
        if not self._path(model).is_file():
            return None
        z = np.load(self._path(model))
        return SM.Forecast(
            quantiles=z["q"], levels=tuple(z["levels"]), fit_s=float(z["fit_s"]),
            predict_s=float(z["predict_s"]),
        )  # fmt: skip

    def put(self, model: str, fc: SM.Forecast) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(
                    f, q=fc.quantiles, levels=fc.levels, fit_s=fc.fit_s, predict_s=fc.predict_s
                )

        _atomic_file(self.folder, self._path(model).name, write)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclasses.dataclass(frozen=True)
class Truth:
    """What a forecast of a set is scored against: the test windows (protocol order), their
    values ``y`` [N, H, C], each window's history and the domain read from the training rows."""

    windows: list
    y: np.ndarray
    histories: list
    lower: np.ndarray

    @classmethod
    def of(cls, df, proto) -> Truth:
        train, ws = window_splits(df, proto)
        _, y = windows_to_arrays(ws, proto)
        histories = [yy[:p] for yy, _, p in windows(df, proto)]
        lower = domain_lower_bounds(train[list(proto.target_columns)].to_numpy(np.float64))
        return cls(ws, y, histories, lower)

    def score(self, fc, proto) -> dict:
        """:func:`benchmarks.suite_metrics.score` of forecast ``fc`` on these windows."""
        return SM.score(fc, self.y, self.histories, proto.season_length, self.lower)


def run_piece(piece: Piece, work: Path, budget_s: float | None, quick: bool) -> dict:
    """Run one piece in this process and write its record; returns the record. A missing data
    set raises (the caller skips the set); any error of the model gives a ``failed`` record."""
    df, proto = datasets.load(piece.set)
    if quick:
        df, proto = quick_subset(df, proto)
    truth = Truth.of(df, proto)
    ws = truth.windows
    record: dict = {"n_windows": len(ws), "n_channels": len(proto.target_columns), "quick": quick,
                    "budget_s": budget_s}  # fmt: skip
    try:
        fc = run(
            piece.model, df, proto, piece.seed, budget_s, quick, ForecastCache(work, piece.set)
        )
        record.update(truth.score(fc, proto))
        record.update(
            status="ok", train_s=fc.fit_s, predict_ms_per_window=1000 * fc.predict_s / len(ws)
        )
    except Exception as e:  # noqa: BLE001 - a failing model is a failed row, never a stop
        record.update(status="failed", error=one_line(e).splitlines()[0][:300])
    record["peak_rss_mib"] = _rss_mib()
    write_piece(work, piece, record)
    return record


def _child(piece: Piece, args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "benchmarks.suite", "--piece", f"{piece.set}:{piece.model}:{piece.seed}",
           "--work", str(args.work), "--threads", str(args.threads)]  # fmt: skip
    cmd += ["--budget-s", str(args.budget_s)] if args.budget_s else []
    cmd += ["--quick"] if args.quick else []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, env=env, check=False, timeout=args.piece_timeout
        )
    except subprocess.TimeoutExpired:  # run() has killed the worker
        return subprocess.CompletedProcess(
            cmd, -9, "", f"timed out after {args.piece_timeout:.0f} s"
        )


def run_pieces(pieces: list, args, child=None) -> None:
    """Run the unfinished pieces one by one, each in a subprocess (``child(piece, args)``, a
    CompletedProcess: default this module's worker; another benchmark passes its own)."""
    child = child or _child
    skipped_sets: set[str] = set()
    for piece in pieces:
        path = Path(args.work) / piece.filename
        if piece.set in skipped_sets:
            continue
        if path.is_file():
            old = json.loads(path.read_text())
            if not (args.retry_failed and old.get("status") == "failed"):
                print(f"  done already: {piece.filename} ({old.get('status')})", flush=True)
                continue
        t0 = time.perf_counter()
        proc = child(piece, args)
        wall = time.perf_counter() - t0
        if proc.returncode == EXIT_UNAVAILABLE:
            print(f"skipped data set {piece.set}: {proc.stdout.strip().splitlines()[-1]}")
            skipped_sets.add(piece.set)
            continue
        if not path.is_file():  # the worker died (killed, out of memory, segfault...)
            last = (proc.stderr.strip().splitlines() or [""])[-1][:300]
            write_piece(args.work, piece, {"status": "failed", "quick": args.quick,
                                           "budget_s": getattr(args, "budget_s", None),
                                           "error": f"worker exit code {proc.returncode}: {last}"})  # fmt: skip
        rec = json.loads(path.read_text())
        extra = rec.get("error", "") if rec["status"] != "ok" else f"wql {rec['wql']:.4f}"
        print(f"  {piece.filename}: {rec['status']} in {wall:.0f} s ({extra})", flush=True)


# ---------------------------------------------------------------------------------- merge
STATS = (*SM.METRICS, "train_s", "predict_ms_per_window", "peak_rss_mib")


def set_rows(records: list[dict]) -> list[dict]:
    """Per (set, model): mean and sd over its ``ok`` seeds of every metric, and the training
    budget it ran under (``budget_s``: :func:`~benchmarks.suite_models.training_budget`, blank
    for the untrained models); ``failed`` with the first error when no seed ran. Seeds run under
    different budgets are not averaged: that is an error naming the set and model."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["set"], r["model"]), []).append(r)
    order = {m: i for i, m in enumerate(MODELS)}
    rows = []
    for (s, m), recs in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        ok = [r for r in recs if r.get("status") == "ok"]
        budgets = {training_budget(m, r.get("budget_s")) for r in recs}
        if len(budgets) > 1:
            raise SystemExit(f"--merge: {s} / {m}: seeds ran under budgets {sorted(budgets)} s; "
                             "merge one budget at a time (--work)")  # fmt: skip
        row = {"level": "set", "set": s, "model": m, "status": "ok" if ok else "failed",
               "seeds": len(ok), "n_windows": recs[0].get("n_windows", ""),
               "budget_s": budgets.pop()}  # fmt: skip
        for k in STATS:
            vals = [float(r[k]) for r in ok if r.get(k) is not None]
            row[k] = float(np.mean(vals)) if vals else math.nan
            if m in SEEDED and k in SM.METRICS:
                row[f"{k}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
        failed = [r for r in recs if r.get("status") != "ok"]
        row["error"] = failed[0].get("error", "") if failed else ""
        rows.append(row)
    return rows


def aggregate_rows(
    rows: list[dict], records: Sequence[dict] = (), model: str = "tsdiff"
) -> list[dict]:
    """Per model: geometric means over sets of wQL and MASE relative to seasonal naive, average
    rank by wQL, and ``model``'s wins against it by wQL (``wins/sets``). For a seeded model with
    two or more seeds among ``records`` (the pieces), also the geometric mean of each seed alone
    (``wql_gmean_rel_by_seed``, seeds in order) and their sd (``wql_gmean_rel_sd``,
    ``mase_gmean_rel_sd``): the spread a reader needs before ranking two close models."""
    ok = [r for r in rows if r["status"] == "ok"]
    g_wql, g_mase = SM.geometric_mean_relative(ok, "wql"), SM.geometric_mean_relative(ok, "mase")
    ranks, won = SM.average_ranks(ok, "wql"), SM.wins(ok, model, "wql")
    by_seed = {k: per_seed_gmeans(records, k, g) for k, g in (("wql", g_wql), ("mase", g_mase))}
    out = []
    for m in dict.fromkeys(r["model"] for r in rows):
        w = won.get(m)
        row = {
            "level": "aggregate", "set": "ALL", "model": m,
            "wql_gmean_rel": g_wql.get(m, (math.nan, 0))[0],
            "mase_gmean_rel": g_mase.get(m, (math.nan, 0))[0],
            "n_sets": g_wql.get(m, (math.nan, 0))[1], "avg_rank_wql": ranks.get(m, math.nan),
            f"{model}_wins": f"{w[0]}/{w[1]}" if w else "",
        }  # fmt: skip
        if len(by_seed["wql"].get(m, [])) > 1:
            row["wql_gmean_rel_by_seed"] = " ".join(f"{v:.4f}" for v in by_seed["wql"][m])
            for k in ("wql", "mase"):
                row[f"{k}_gmean_rel_sd"] = float(np.std(by_seed[k].get(m, [math.nan]), ddof=1))
        out.append(row)
    return out


def per_seed_gmeans(
    records: Sequence[dict], metric: str, overall: dict[str, tuple[float, int]]
) -> dict[str, list]:
    """Per seeded model: the geometric mean over sets of ``metric`` relative to seasonal naive
    for each of its seeds alone (in seed order), against the same untrained rows. ``overall`` is
    the mean rows' ``SM.geometric_mean_relative`` (model -> (value, n_sets)); a seed counts only
    where it covers the same number of sets, so that every value is taken over the same sets."""
    ok = [r for r in records if r.get("status") == "ok"]
    fixed = [r for r in ok if r["model"] not in SEEDED]
    out: dict[str, list] = {}
    for seed in sorted({r["seed"] for r in ok if r["model"] in SEEDED}):
        seeded = [r for r in ok if r["model"] in SEEDED and r["seed"] == seed]
        for m, (g, n) in SM.geometric_mean_relative(fixed + seeded, metric).items():
            if m in SEEDED and n == overall.get(m, (math.nan, 0))[1]:
                out.setdefault(m, []).append(g)
    return out


def merge(work: Path, out: Path, sets=None, models=None) -> list[dict]:
    """Merge the pieces under ``work`` (restricted to ``sets`` / ``models`` when given) into
    ``out/suite.csv`` and print the headline tables; returns the rows."""
    records = [
        r for r in read_pieces(work)
        if (sets is None or r["set"] in sets) and (models is None or r["model"] in models)
    ]  # fmt: skip
    if not records:
        raise SystemExit(f"--merge: no finished pieces under {work}")
    rows = set_rows(records)
    agg = aggregate_rows(rows, records)
    quick = any(r.get("quick") for r in records)
    path = write_csv(out, "suite", rows + agg, {"quick": quick})
    print(f"wrote {path}")
    print("\nper set (mean over seeds; failed rows name their error):")
    cols = ("set", "model", "status", "seeds", "budget_s", "wql", "mase", "crps", "cov90", "crps_sum",
            "outside_domain", "train_s", "predict_ms_per_window", "peak_rss_mib")  # fmt: skip
    print(format_table([{c: r.get(c, "") for c in cols} for r in rows], cols))
    for r in rows:
        if r["status"] != "ok":
            print(f"  failed: {r['set']} / {r['model']}: {r['error']}")
    print("\nheadline (geometric mean over sets relative to seasonal naive; rank by wQL):")
    print(format_table(agg), flush=True)
    return rows + agg


def _csv_list(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="the forecasting suite: every model on every set")
    ap.add_argument("--sets", type=_csv_list, default=None, help=f"default: {','.join(SUITE)}")
    ap.add_argument("--models", type=_csv_list, default=None, help=f"default: {','.join(MODELS)}")
    ap.add_argument("--seeds", type=lambda t: [int(v) for v in _csv_list(t)], default=None,
                    help="seeds of the trained deep models (default 0,1,2; --quick 0)")  # fmt: skip
    ap.add_argument("--budget-s", type=float, default=None,
                    help="training budget of every trained model (default: tsdiff's own "
                    "max_time_s, GluonTS 300 s; --quick 20 s)")  # fmt: skip
    timeout = f"default none; --quick {QUICK_PIECE_TIMEOUT_S:.0f}"
    return piece_arguments(ap, WORK, threads=1, timeout_default=timeout)


def piece_arguments(ap, work: Path, threads: int, timeout_default: str):
    """The options of a script that runs in resumable pieces (this one and
    :mod:`benchmarks.pretrained_base`): --quick, --merge, --retry-failed, --work, --out,
    --threads, --piece-timeout and the worker's hidden --piece. Returns ``ap``."""
    ap.add_argument("--quick", action="store_true", help="smoke run in minutes")
    ap.add_argument("--merge", action="store_true", help="only merge the finished pieces")
    ap.add_argument("--retry-failed", action="store_true", help="rerun the failed pieces")
    ap.add_argument("--work", type=Path, default=None, help=f"piece folder (default {work})")
    ap.add_argument("--out", type=Path, default=None, help=f"CSV folder (default {RESULTS})")
    ap.add_argument("--threads", type=int, default=threads, help="torch / BLAS threads per piece")
    ap.add_argument(
        "--piece-timeout",
        type=float,
        default=None,
        help=f"seconds after which a piece is killed and failed ({timeout_default})",
    )
    ap.add_argument("--piece", default=None, help=argparse.SUPPRESS)  # the worker's piece
    return ap


def main(argv=None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    args.work = args.work or (QUICK_WORK if args.quick else WORK)
    args.out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    if args.quick and args.budget_s is None:
        args.budget_s = QUICK_BUDGET_S
    if args.quick and args.piece_timeout is None:
        args.piece_timeout = QUICK_PIECE_TIMEOUT_S
    if args.piece:  # worker: one piece in this process
        quiet(args.threads)
        s, m, seed = args.piece.split(":")
        try:
            rec = run_piece(Piece(s, m, int(seed)), args.work, args.budget_s, args.quick)
        except UNAVAILABLE as e:
            print(one_line(e).splitlines()[0])
            return EXIT_UNAVAILABLE
        return 0 if rec["status"] == "ok" else 1
    sets = args.sets or list(QUICK_SETS if args.quick else SUITE)
    models = args.models or list(MODELS)
    if unknown := [m for m in models if m not in MODELS]:
        ap.error(f"--models: unknown {unknown}; expected some of {list(MODELS)}")
    if unknown := [s for s in sets if s not in datasets.LOADERS]:
        ap.error(f"--sets: unknown {unknown}; expected some of {list(datasets.LOADERS)}")
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    if not args.merge:
        pieces = plan(sets, models, seeds)
        print(f"== suite: {len(pieces)} pieces, sets {sets}, work {args.work} ==", flush=True)
        t0 = time.perf_counter()
        run_pieces(pieces, args)
        print(f"pieces done in {time.perf_counter() - t0:.0f} s wall", flush=True)
    merge(args.work, args.out, sets if args.sets else None, models if args.models else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
