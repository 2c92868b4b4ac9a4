"""File helpers shared by the commands: read a long frame, check output places before long work,
write frames and JSON atomically (a write that fails is one :class:`OutputError` line naming the
file and the OS reason: full disk, read-only, permission)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lm_core.outputs import (
    OutputError,
    ensure_writable,
    write_output_file,
)
from tsdiff.data.datasets import load_tmy3
from tsdiff.forecaster import Forecaster

PARQUET_ENGINE = "parquet needs pyarrow or fastparquet (pip install pyarrow); or use .csv"


def read_frame(path: str | Path) -> pd.DataFrame:
    """A long frame from ``.csv`` (``.csv.gz``), ``.parquet``, or ``embedded:tmy3`` (shipped data)."""
    if str(path) == "embedded:tmy3":
        return load_tmy3()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data: no such file {str(p)!r}")
    name = p.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        try:
            return pd.read_csv(p)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise ValueError(f"data: cannot read {str(p)!r} as CSV ({e})") from None
    if name.endswith(".parquet"):
        try:
            return pd.read_parquet(p)
        except ImportError:
            raise ValueError(f"data: {str(p)!r}: {PARQUET_ENGINE}") from None
        except (OSError, ValueError) as e:
            raise ValueError(f"data: cannot read {str(p)!r} as parquet ({e})") from None
    raise ValueError(f"data: {str(p)!r}: expected a .csv, .csv.gz or .parquet file")


def check_output(path: str | Path) -> Path:
    """``path`` as a Path if it names a .csv or .parquet file; ValueError otherwise."""
    p = Path(path)
    if not p.name.lower().endswith((".csv", ".parquet")):
        raise ValueError(f"output: {str(p)!r}: expected a .csv or .parquet file name")
    return p


def check_writable_file(path: str | Path) -> Path:
    """Before long work: the folder of output file ``path`` exists (it is created) and takes a
    file, and ``path`` is not a folder; else :class:`OutputError` in one line naming it."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p}: expected an output file name, but it is a folder")
    ensure_writable(p.parent)
    return p


def write_frame(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV or parquet (by extension) to a temporary file, then rename."""
    p = check_output(path)

    def write(tmp: Path) -> None:
        if p.name.lower().endswith(".csv"):
            df.to_csv(tmp, index=False)
            return
        try:
            df.to_parquet(tmp, index=False)
        except ImportError:
            raise ValueError(f"output: {str(p)!r}: {PARQUET_ENGINE}") from None

    return write_output_file(p, write)


def _clean(x):
    """JSON-safe copy: numpy scalars to floats, NaN / inf to None, arrays to lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(obj: dict, path: str | Path) -> Path:
    """Strict JSON (NaN written as null), atomically."""
    text = json.dumps(_clean(obj), indent=2, default=str)
    return write_output_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_forecaster(ckpt: str | Path):
    """A :class:`tsdiff.Forecaster` from ``tsdiff fit``'s directory or a serialized GluonTS predictor."""
    p = Path(ckpt)
    if not p.exists():
        raise FileNotFoundError(f"ckpt: no such directory {str(p)!r}")
    if not (p / "config.json").is_file() and (p / "tsdiff" / "config.json").is_file():
        p = p / "tsdiff"
    return Forecaster.load(p)


def item_chunks(df: pd.DataFrame, item_id: str, size: int) -> list[pd.DataFrame]:
    """Split a long frame into frames of at most ``size`` items (sorted item order)."""
    if item_id not in df.columns:
        raise ValueError(f"unknown column {item_id!r} (item id); the frame has {list(df.columns)}")
    items = sorted(df[item_id].dropna().unique().tolist(), key=str)
    groups = [items[i : i + size] for i in range(0, len(items), size)] or [[]]
    return [df[df[item_id].isin(g)] for g in groups]


def check_counts(num_samples: int, batch_items: int) -> None:
    """--num-samples and --batch-items of forecast and evaluate: positive integers."""
    if num_samples < 1:
        raise ValueError(f"--num-samples: expected a positive integer, got {num_samples}")
    if batch_items < 1:
        raise ValueError(f"--batch-items: expected a positive integer, got {batch_items}")
