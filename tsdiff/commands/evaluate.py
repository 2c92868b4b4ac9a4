"""``tsdiff evaluate``: rolling-origin backtest of a checkpoint beside seasonal naive.

    tsdiff evaluate --ckpt runs/tsdiff-tmy3 --data embedded:tmy3 --windows 7 \
        [--num-samples 100] [--json metrics.json] [--plots figures/]

Protocol (../shared/EVALUATION.md): the last ``K`` horizons of every item are the test windows;
each is forecast from the history before its origin (scaling from the context only). For an honest
score the checkpoint must not have trained on them (``tsdiff fit --holdout-windows K``). Scores
(:func:`tsdiff.metrics.evaluate_samples`): normalised CRPS, wQL over q = 0.1..0.9, ND, MASE and
MSIS (seasonal in-sample scale, ``--season`` default from the frequency), energy score on the
joint path, coverage of the central 50/80/90/95 % intervals, calibration error. Seasonal naive is
scored on the same windows as a one-path ensemble (its CRPS is its MAE; it has no intervals, so
no coverage). ``--plots`` writes a fan
chart of the last window of the first ``--max-plots`` items and the PIT histogram.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lm_core.outputs import ensure_writable
from tsdiff.baselines import seasonal_naive_samples
from tsdiff.commands.io import (
    check_counts,
    check_writable_file,
    item_chunks,
    load_forecaster,
    read_frame,
    write_json,
)
from tsdiff.features import season_length
from tsdiff.metrics import evaluate_samples
from tsdiff.plots import fan_chart, pit_histogram

ROWS = ("crps", "wql", "nd", "mase", "msis", "energy_score", "crps_sum")
CALIB = ("cov50", "cov80", "cov90", "cov95", "calibration_error")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsdiff evaluate", description=__doc__.splitlines()[0])
    p.add_argument(
        "--ckpt",
        required=True,
        help="checkpoint directory (tsdiff fit --out, or a serialized GluonTS predictor)",
    )
    p.add_argument(
        "--data",
        required=True,
        help="long frame with the test windows at its end (.csv, .csv.gz, .parquet, embedded:tmy3)",
    )
    p.add_argument(
        "--windows",
        type=int,
        default=1,
        help="K test windows (horizons) at the end of every item (default 1)",
    )
    p.add_argument(
        "--num-samples", type=int, default=100, help="sample paths per window (default 100)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the sampler and of the randomised PIT (default 0)",
    )
    p.add_argument(
        "--season",
        type=int,
        default=None,
        help="season of seasonal naive, MASE and MSIS (default from freq)",
    )
    p.add_argument(
        "--json", default=None, help="write every score and the protocol to this JSON file"
    )
    p.add_argument("--plots", default=None, help="directory for fan-chart and PIT-histogram PNGs")
    p.add_argument(
        "--max-plots",
        type=int,
        default=4,
        help="fan charts for at most this many items (default 4)",
    )
    p.add_argument(
        "--batch-items", type=int, default=16, help="items per sampling chunk (default 16)"
    )
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )
    return p


def backtest_chunked(
    f, df, windows: int, num_samples: int, seed: int, batch_items: int, progress: bool
) -> dict:
    """``Forecaster.backtest`` over chunks of items (chunk k: seed + k); fields concatenated."""
    chunks = item_chunks(df, f.columns.item_id, batch_items)
    parts = []
    with tqdm(total=len(chunks), desc="backtest", unit="chunk", disable=not progress) as bar:
        for k, part in enumerate(chunks):
            parts.append(f.backtest(part, windows=windows, num_samples=num_samples, seed=seed + k))
            bar.update()
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("samples", "y", "observed")}
    for k in ("insample", "items", "origins"):
        out[k] = [v for p in parts for v in p[k]]
    out["nfe"] = parts[0]["nfe"]
    out["seconds"] = float(sum(p["seconds"] for p in parts))
    return out


def score(bt: dict, horizon: int, season: int, seed: int) -> tuple[dict, dict, np.ndarray]:
    """Scores of tsdiff and seasonal naive on the backtest windows; y is NaN where unobserved."""
    y = np.where(bt["observed"], bt["y"], np.nan)  # [N, H, C]
    rng = np.random.default_rng(seed)
    ours = evaluate_samples(bt["samples"], y, bt["insample"], season, pit_rng=rng)
    naive = seasonal_naive_samples(bt["insample"], horizon, season)
    base = evaluate_samples(naive, y, bt["insample"], season, pit_rng=rng)
    return ours, base, y


def table(ours: dict, base: dict) -> str:
    """Metric rows: tsdiff, seasonal naive and their ratio (lower is better above the rule)."""
    lines = [f"{'metric':<18}{'tsdiff':>12}{'seas.naive':>12}{'ratio':>9}", "-" * 51]
    for k in ROWS:
        r = ours[k] / base[k] if base[k] else float("nan")
        lines.append(f"{k:<18}{ours[k]:>12.4f}{base[k]:>12.4f}{r:>9.3f}")
    lines.append("-" * 51)
    for k in CALIB:  # seasonal naive is a point forecast: no intervals
        lines.append(f"{k:<18}{ours[k]:>12.4f}{'-':>12}{'':>9}")
    return "\n".join(lines)


def plots(
    bt: dict,
    y: np.ndarray,
    pit: np.ndarray,
    targets: list[str],
    out: Path,
    max_items: int,
    freq: str | None = None,
) -> list[Path]:
    """Fan charts of the last window of the first ``max_items`` items, and the PIT histogram."""
    last = {item: i for i, item in enumerate(bt["items"])}
    paths = []
    H = y.shape[1]
    for item, i in list(last.items())[:max_items]:
        hist = np.asarray(bt["insample"][i])[-4 * H :]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(item))
        paths.append(
            fan_chart(
                hist,
                bt["samples"][i],
                out / f"fan_{safe}.png",
                truth=y[i],
                names=targets,
                title=f"{item}: origin {bt['origins'][i]}",
                origin=bt["origins"][i],
                freq=freq,
            )
        )
    paths.append(pit_histogram(pit, out / "pit.png", title="PIT (flat = calibrated)"))
    return paths


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    check_counts(a.num_samples, a.batch_items)
    if a.windows < 1:
        raise ValueError(f"--windows: expected a positive integer, got {a.windows}")
    if a.json:  # outputs checked before any sampling
        check_writable_file(a.json)
    if a.plots:
        ensure_writable(a.plots)
    f = load_forecaster(a.ckpt)
    c = f.config
    season = a.season or season_length(c.freq)
    if season < 1:
        raise ValueError(f"--season: expected a positive integer, got {season}")
    df = read_frame(a.data)
    bt = backtest_chunked(f, df, a.windows, a.num_samples, a.seed, a.batch_items, a.progress)
    ours, base, y = score(bt, c.prediction_length, season, a.seed)
    protocol = {
        "windows_per_item": a.windows,
        "items": len(set(bt["items"])),
        "windows": len(bt["items"]),
        "prediction_length": c.prediction_length,
        "context_length": c.context_length,
        "freq": c.freq,
        "num_samples": a.num_samples,
        "season": season,
        "nfe_per_path": bt["nfe"],
        "sampling_seconds": bt["seconds"],
        "quantiles_wql": "0.1..0.9",
        "temperature": f.temperature,
        "spread": f.spread,
    }
    print(
        f"backtest: {protocol['windows']} windows ({a.windows} per item x {protocol['items']} items), "
        f"H={c.prediction_length}, {a.num_samples} paths, NFE {bt['nfe']}/path, "
        f"{bt['seconds']:.1f} s sampling, season {season}"
    )
    if a.plots:
        for p in plots(
            bt, y, ours["pit"], f.columns.targets, Path(a.plots), a.max_plots, f.config.freq
        ):
            print(f"wrote {p}")
    if a.json:
        counts, _ = np.histogram(ours["pit"], bins=10, range=(0, 1))
        ours_j = {k: v for k, v in ours.items() if k != "pit"}
        base_j = {k: v for k, v in base.items() if k != "pit" and k not in CALIB}
        doc = {
            "protocol": protocol,
            "tsdiff": ours_j,
            "seasonal_naive": base_j,
            "pit_histogram": counts,
        }
        print(f"wrote {write_json(doc, a.json)}")
    print(table(ours, base))
    return 0


__all__ = ["backtest_chunked", "build_parser", "main", "score", "table"]
