"""Shared helpers of the benchmarks: thread setup, machine header, tables, CSV and PNG.

Every benchmark prints its protocol and the machine first, its table last, and writes its rows
into its one ``benchmarks/results/<name>.csv``: the rows of the variant it ran (its ``key``
columns) are replaced, the other variants' rows are kept. Files are written whole (a temporary file in the
same directory, then renamed), so a killed run never leaves a half-written result. ``--quick``
runs write to ``.data/bench/quick/`` (gitignored) unless ``--out`` is given, so a smoke run never
overwrites the committed results.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import logging
import os
import platform
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from lm_core.checkpoint import atomic_write_file

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CACHE = REPO / ".data" / "bench"  # gitignored: checkpoints shared between benchmarks
QUICK_RESULTS = CACHE / "quick"  # where --quick runs write when --out is not given


def results_dir(out: Path | None, quick: bool) -> Path:
    """The folder results go to: ``out`` if given, else ``QUICK_RESULTS`` for --quick runs,
    else ``RESULTS`` (the committed current results)."""
    if out is not None:
        return Path(out)
    return QUICK_RESULTS if quick else RESULTS


class _BenchParser(argparse.ArgumentParser):
    """An ArgumentParser that resolves ``--out`` with :func:`results_dir` after parsing."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns = super().parse_args(args, namespace)
        ns.out = results_dir(ns.out, ns.quick)
        return ns


def add_out_argument(ap: argparse.ArgumentParser) -> None:
    """``--out``: the results folder (resolve it with :func:`results_dir`)."""
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder (default benchmarks/results; with --quick .data/bench/quick)",
    )


def base_parser(description: str) -> argparse.ArgumentParser:
    """Options every benchmark built on it takes: --quick, --device, --threads, --out."""
    ap = _BenchParser(description=description)
    ap.add_argument("--quick", action="store_true", help="smoke run (about a minute)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    add_out_argument(ap)
    return ap


def setup_torch(threads: int, device: str = "cpu"):
    """Set torch's intra-op threads explicitly; returns the torch module."""
    torch.set_num_threads(threads)
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return torch


def quiet(threads: int):
    """A worker without warnings or Lightning / GluonTS log lines, on ``threads`` torch threads;
    returns the torch module."""
    warnings.filterwarnings("ignore")
    for n in ("lightning", "lightning.pytorch", "pytorch_lightning", "gluonts"):
        logging.getLogger(n).setLevel(logging.ERROR)
    torch.set_num_threads(threads)
    return torch


def machine() -> dict:
    dev = "cpu"
    if torch.cuda.is_available():
        dev = f"cuda available: {torch.cuda.get_device_name(0)}"
    return {
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cuda": dev,
    }


def print_header(
    name: str, protocol: Sequence[str], args: argparse.Namespace | None = None
) -> dict:
    """Print the benchmark name, protocol lines, machine and arguments; returns the machine dict."""
    m = machine()
    print(f"== {name} ==", flush=True)
    print("protocol:")
    for line in protocol:
        print(f"  - {line}")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in m.items()))
    if args is not None:
        print("args: " + ", ".join(f"{k}={v}" for k, v in vars(args).items()))
    print(flush=True)
    return m


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.3f}"
        return f"{v:.4f}"
    return str(v)


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of ``rows`` (dicts), columns in the given order (default: every key of any
    row, in order of first appearance; a row without a column shows an empty cell)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    width = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(vals):
        return "| " + " | ".join(v.rjust(w) for v, w in zip(vals, width, strict=False)) + " |"

    out = [line(columns), "|" + "|".join("-" * (w + 1) + ":" for w in width) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _atomic_file(out_dir: Path, filename: str, write) -> Path:
    """Create ``out_dir/filename`` atomically (:func:`lm_core.checkpoint.atomic_write_file`)."""
    return atomic_write_file(Path(out_dir) / filename, write)


def read_csv_rows(path: Path) -> tuple[list[str], list[dict]]:
    """Columns and rows (dicts of strings) of a CSV file; ``([], [])`` when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def write_csv(
    out_dir: Path,
    name: str,
    rows: Sequence[dict],
    meta: dict | None = None,
    key: Sequence[str] = (),
) -> Path:
    """Write rows to ``out_dir/name.csv`` whole (temporary file, then rename); returns the path.

    ``meta`` values become extra columns of every new row. Without ``key`` the file holds exactly
    ``rows``. With ``key`` (column names every row carries, e.g. ``("task",)``) the file is
    updated: an existing row whose key values equal those of some new row (a variant this run
    measured) is dropped, every other existing row is kept as it was, and the new rows follow,
    so one CSV holds the current rows of every variant. Columns are the union, existing first.
    """
    meta = meta or {}
    new = [{**meta, **r} for r in rows]
    missing = sorted({k for r in new for k in key if k not in r})
    if missing:
        raise ValueError(f"write_csv({name!r}): rows lack the key column(s) {missing}")
    columns: list[str] = list(key)
    kept: list[dict] = []
    if key:
        old_cols, old_rows = read_csv_rows(Path(out_dir) / f"{name}.csv")
        columns = old_cols + [c for c in columns if c not in old_cols]
        ran = {tuple(str(r[k]) for k in key) for r in new}
        kept = [r for r in old_rows if tuple(r.get(k, "") for k in key) not in ran]
    for r in rows:
        columns += [k for k in r if k not in columns]
    columns += [k for k in meta if k not in columns]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, restval="")
            w.writeheader()
            for r in kept + new:
                w.writerow(r)

    return _atomic_file(out_dir, f"{name}.csv", write)


def save_png(fig, out_dir: Path, name: str) -> Path:
    """Save a matplotlib figure to ``out_dir/name.png`` atomically."""
    return _atomic_file(
        out_dir,
        f"{name}.png",
        lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"),
    )


def finish(
    name: str,
    rows: Sequence[dict],
    columns: Sequence[str],
    out_dir: Path,
    meta: dict,
    notes: Sequence[str] = (),
    key: Sequence[str] = (),
) -> None:
    """Write the CSV (:func:`write_csv`) and print the table last (the notes just above it)."""
    path = write_csv(out_dir, name, rows, meta, key)
    print(f"wrote {path}")
    for n in notes:
        print(n)
    print()
    print(format_table(rows, columns), flush=True)
