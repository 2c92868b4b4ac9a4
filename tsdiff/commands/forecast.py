"""``tsdiff forecast``: sample paths for the H steps after each item's end.

    tsdiff forecast --ckpt runs/tsdiff-tmy3 --data embedded:tmy3 --output forecast.csv \
        [--num-samples 100] [--quantiles 0.1,0.5,0.9] [--samples-output paths.parquet]
    tsdiff forecast --model base --prediction-length 24 --freq h --data FILE --output fc.csv \
        [--target y] [--item-id id --timestamp date]

``--model base`` forecasts zero-shot with the pretrained base shipped in the package (or
``--model DIR``, a base written by ``python -m tsdiff.pretrain``): no checkpoint, no training;
targets are every column but the id and time unless ``--target`` names them.

``--output`` gets one row per (item, future timestamp) with ``<target>_mean`` and
``<target>_q<level>`` columns; ``--samples-output`` every path (item_id, sample, timestamp, one
column per target). CSV or parquet by extension, written to a temporary file and renamed; their
folders are checked writable before the checkpoint is loaded. Items
are sampled in chunks of ``--batch-items`` (a progress bar per chunk); chunk ``k`` uses seed
``seed + k``, so a run is reproducible for the same data, seed and chunk size.
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm.auto import tqdm

from tsdiff.commands.io import (
    check_counts,
    check_output,
    check_writable_file,
    item_chunks,
    load_forecaster,
    read_frame,
    write_frame,
)
from tsdiff.forecast import Forecast
from tsdiff.forecaster import Forecaster
from tsdiff.pretrained.zero_shot import bind_frame


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsdiff forecast", description=__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--ckpt", help="checkpoint directory (tsdiff fit --out, or a serialized GluonTS predictor)"
    )
    which.add_argument(
        "--model",
        help="'base': zero-shot with the packaged pretrained base (or a base folder); needs "
        "--prediction-length and --freq",
    )
    p.add_argument("--prediction-length", type=int, default=None, help="horizon (with --model)")
    p.add_argument("--freq", default=None, help="pandas frequency of the data (with --model)")
    p.add_argument("--target", default=None, help="target column(s), comma-separated (--model)")
    p.add_argument("--item-id", default="item_id", help="item id column (with --model)")
    p.add_argument("--timestamp", default="timestamp", help="timestamp column (with --model)")
    p.add_argument(
        "--data",
        required=True,
        help="long frame: .csv, .csv.gz, .parquet or embedded:tmy3 (same columns as in fit)",
    )
    p.add_argument(
        "--output", required=True, help="mean and quantiles per item and step (.csv or .parquet)"
    )
    p.add_argument(
        "--future",
        default=None,
        help="long frame with the known-future covariates for the H steps after each item's end "
        "(required when the checkpoint has future_covariates)",
    )
    p.add_argument(
        "--samples-output", default=None, help="every sample path, long format (.csv or .parquet)"
    )
    p.add_argument(
        "--num-samples", type=int, default=100, help="sample paths per item (default 100)"
    )
    p.add_argument(
        "--quantiles",
        default="0.1,0.5,0.9",
        help="comma-separated quantile levels (default 0.1,0.5,0.9)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler (default 0)")
    p.add_argument(
        "--batch-items", type=int, default=64, help="items per sampling chunk (default 64)"
    )
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )
    return p


def parse_quantiles(text: str) -> tuple[float, ...]:
    """``"0.1,0.5,0.9"`` -> (0.1, 0.5, 0.9); ValueError naming the flag otherwise."""
    try:
        qs = tuple(float(q) for q in text.split(",") if q.strip())
    except ValueError:
        raise ValueError(f"--quantiles: expected comma-separated numbers, got {text!r}") from None
    if not qs or any(not 0.0 < q < 1.0 for q in qs):
        raise ValueError(f"--quantiles: expected levels strictly between 0 and 1, got {text!r}")
    return qs


def predict_chunked(
    f, df, num_samples: int, seed: int, batch_items: int, progress: bool, future=None
) -> Forecast:
    """``Forecaster.predict`` over chunks of items, with a progress bar; one merged Forecast."""
    if future is not None and f.columns.item_id not in future.columns:
        raise ValueError(f"future: unknown column {f.columns.item_id!r} (item id)")
    chunks = item_chunks(df, f.columns.item_id, batch_items)
    parts = []
    with tqdm(total=len(chunks), desc="sampling", unit="chunk", disable=not progress) as bar:
        for k, part in enumerate(chunks):
            fut = None
            if future is not None:
                fut = future[future[f.columns.item_id].isin(part[f.columns.item_id].unique())]
            parts.append(f.predict(part, num_samples=num_samples, future=fut, seed=seed + k))
            bar.update()
    first = parts[0]
    return Forecast(
        np.concatenate([p.samples for p in parts]),
        [i for p in parts for i in p.item_ids],
        [s for p in parts for s in p.starts],
        first.freq,
        first.targets,
        first.nfe,
    )


def zero_shot_forecaster(a: argparse.Namespace) -> Forecaster:
    """``--model base|DIR`` with ``--prediction-length`` and ``--freq``: a zero-shot forecaster
    (:meth:`tsdiff.Forecaster.from_pretrained`); a missing flag is one line naming it."""
    for flag, value in (("--prediction-length", a.prediction_length), ("--freq", a.freq)):
        if value is None:
            raise ValueError(f"{flag}: required with --model (the base has no horizon of its own)")
    if a.prediction_length < 1:
        raise ValueError(
            f"--prediction-length: expected a positive integer, got {a.prediction_length}"
        )
    target = a.target.split(",") if a.target else None
    return Forecaster.from_pretrained(
        a.prediction_length, a.freq, path=a.model, target=target,
        item_id=a.item_id, timestamp=a.timestamp,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    quantiles = parse_quantiles(a.quantiles)
    check_counts(a.num_samples, a.batch_items)
    for out in (a.output, a.samples_output):
        if out is not None:
            check_writable_file(check_output(out))  # before any sampling
    f = load_forecaster(a.ckpt) if a.ckpt else zero_shot_forecaster(a)
    df = read_frame(a.data)
    if f.roles is not None:  # zero-shot: the column roles come from this frame
        bind_frame(f, df, *f.roles)
    future = read_frame(a.future) if a.future else None
    fc = predict_chunked(f, df, a.num_samples, a.seed, a.batch_items, a.progress, future)
    out = write_frame(fc.to_dataframe(quantiles), a.output)
    msg = f"wrote {out}: {len(fc.item_ids)} items x {fc.samples.shape[2]} steps"
    if a.samples_output:
        write_frame(fc.samples_dataframe(), a.samples_output)
        msg += f"; {fc.samples.shape[1]} paths each to {a.samples_output}"
    print(msg + f" (NFE {fc.nfe} per path)")
    return 0


__all__ = ["build_parser", "main", "parse_quantiles", "predict_chunked", "zero_shot_forecaster"]
