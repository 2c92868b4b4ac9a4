"""The suite split by data set for the pretrained tsdiff base (issue 23): which sets the base
may train on, which are held out for zero-shot evaluation, and the export of the training parts.

The split is by data set, never by time. Held out (the base never sees any of their rows): one
set per frequency group where the suite has several, and both sets of one source together
(``elecdaily`` and ``elecdemand`` are the same AEMO Victoria 2014 demand, daily and
half-hourly). Pretraining reads only the *training part* of the other sets: for each item, its
rows before its first test origin (:func:`tsdiff.data.protocol.window_splits`), so that their own
suite scores stay honest too.

    python -m benchmarks.pretrain_split [--out .data/pretrain/real]

writes one long frame per pretraining set, ``OUT/<set>.parquet`` (item_id, timestamp and the
set's target columns; covariates dropped: the base is univariate), atomically, and a
``sources.json`` with each set's source and licence (:data:`benchmarks.data.registry.SET_INFO`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.data.registry import SET_INFO, SUITE
from benchmarks.datasets import DatasetUnavailable, load
from lm_core.outputs import atomic_write_file, atomic_write_text
from tsdiff.data.protocol import window_splits

HELD_OUT = (
    "m1_yearly",
    "aus_accommodation",
    "gasoline",
    "peyton_manning",
    "elecdaily",
    "bikesharing",
    "elecdemand",
    "taylor",
)
"""Suite sets the base never sees: its zero-shot evaluation sets (yearly, quarterly, weekly,
daily x 2, hourly, half-hourly x 2)."""

PRETRAIN = tuple(s for s in SUITE if s not in HELD_OUT)
"""Suite sets whose training parts the base is pretrained on."""

DEFAULT_OUT = Path(".data/pretrain/real")


def export(out: Path = DEFAULT_OUT, sets=PRETRAIN, data_cache=None) -> list[Path]:
    """Write the training part of every set in ``sets`` to ``out/<set>.parquet``; returns the
    files written. A set whose package file is missing is skipped with one line (the base then
    trains without it; ``sources.json`` records what was exported)."""
    out.mkdir(parents=True, exist_ok=True)
    written, sources = [], {}
    for name in sets:
        if name in HELD_OUT:
            raise ValueError(f"{name!r} is held out for zero-shot evaluation: never pretrain on it")
        try:
            df, proto = load(name, data_cache)
        except DatasetUnavailable as e:
            print(f"pretrain_split: skipped {name}: {e}")
            continue
        train, _ = window_splits(df, proto)
        frame = train[["item_id", "timestamp", *proto.target_columns]].copy()
        frame["item_id"] = frame["item_id"].astype(str)
        path = atomic_write_file(out / f"{name}.parquet", lambda p, f=frame: f.to_parquet(p))
        written.append(path)
        info = SET_INFO[name]
        sources[name] = {
            "source": info.source, "licence": info.licence, "freq": proto.freq,
            "rows": len(frame), "items": int(frame["item_id"].nunique()),
            "targets": list(proto.target_columns),
        }  # fmt: skip
        print(f"pretrain_split: {name}: {len(frame)} rows, {len(proto.target_columns)} target(s)")
    atomic_write_text(out / "sources.json", json.dumps(sources, indent=1))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pretrain_split")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--data-cache", type=Path, default=None)
    args = p.parse_args(argv)
    export(args.out, data_cache=args.data_cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
