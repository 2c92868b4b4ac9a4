"""Rebuild ``tmy3_greensboro.csv.gz`` from the TMY3 file shipped in the ``pvlib`` wheel.

Run from the repository root: ``python tsdiff/data/embedded/build_tmy3.py`` (needs ``pvlib``,
a benchmark extra; the package itself only reads the gzipped CSV).

Timestamps: TMY3 labels each hour by its end (01:00 ... 24:00, local standard time, UTC-5). With
``coerce_year=2001`` pvlib turns the last hour into 2002-01-01 00:00 (older releases wrap it to
2001-01-01 00:00 instead). The file's rows are in chronological order, so this script keeps that
order and relabels every row by the START of its hour: a regular, duplicate-free hourly index from
2001-01-01 00:00 to 2001-12-31 23:00, tz-naive local standard time (UTC-5, no daylight saving).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from tsdiff.data.datasets import TMY3_CHANNELS

CHANNELS = list(TMY3_CHANNELS)
# decimals kept per channel: the source precision (W/m2, degC, %, hPa, m/s, deg, cm)
DECIMALS = {"temp_air": 1, "temp_dew": 1, "wind_speed": 1, "precipitable_water": 1}
OUT = Path(__file__).with_name("tmy3_greensboro.csv.gz")


def build() -> pd.DataFrame:
    """Read the pvlib TMY3 file -> wide frame ``[8760 rows, timestamp + 10 channels]``."""
    import pvlib  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    path = Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"
    raw, _ = pvlib.iotools.read_tmy3(str(path), map_variables=True, coerce_year=2001)
    if len(raw) != 8760:
        raise ValueError(f"expected 8760 hourly rows, got {len(raw)}")
    df = raw[CHANNELS].reset_index(drop=True)
    for col in CHANNELS:
        df[col] = df[col].astype(float).round(DECIMALS.get(col, 0))
        if DECIMALS.get(col, 0) == 0:
            df[col] = df[col].astype(int)
    df.insert(0, "timestamp", pd.date_range("2001-01-01 00:00", periods=len(df), freq="h"))
    return df


def main() -> None:
    df = build()
    text = df.to_csv(index=False, date_format="%Y-%m-%d %H:%M")
    with gzip.GzipFile(OUT, "wb", compresslevel=9, mtime=0) as fh:  # mtime 0: reproducible bytes
        fh.write(text.encode())
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB, {len(df)} rows)")


if __name__ == "__main__":
    main()
