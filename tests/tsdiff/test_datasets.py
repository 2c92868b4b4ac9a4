"""The embedded TMY3 data set loads offline with a regular hourly index and no gaps."""

import numpy as np
import pandas as pd

from tsdiff.data.datasets import TMY3_CHANNELS, load_tmy3


def test_load_tmy3_long_format():
    df = load_tmy3()
    assert list(df.columns) == ["item_id", "timestamp", *TMY3_CHANNELS]
    assert df.shape == (8760, 12)
    assert (df["item_id"] == "greensboro").all()
    ts = df["timestamp"]
    assert ts.is_monotonic_increasing and not ts.duplicated().any()
    assert (ts.diff().dropna() == pd.Timedelta("1h")).all()
    assert ts.iloc[0] == pd.Timestamp("2001-01-01 00:00")
    assert ts.iloc[-1] == pd.Timestamp("2001-12-31 23:00")
    assert not df[list(TMY3_CHANNELS)].isna().any().any()
    assert all(df[c].dtype == np.float64 for c in TMY3_CHANNELS)


def test_load_tmy3_wide_and_physical_sanity():
    wide = load_tmy3(long=False)
    assert wide.shape == (8760, 10) and wide.index.freqstr == "h"
    # irradiance is zero at local midnight and peaks around noon
    hourly = wide.groupby(wide.index.hour)["ghi"].mean()
    assert hourly.loc[0] == 0 and 10 <= hourly.idxmax() <= 13
    assert wide["relative_humidity"].between(0, 100).all()
    assert (wide["temp_dew"] <= wide["temp_air"] + 0.5).all()
