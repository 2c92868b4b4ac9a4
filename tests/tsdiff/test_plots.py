"""Figures: fan charts put dates on the x-axis when they know the origin and frequency."""

import numpy as np
import pandas as pd

from tsdiff.plots import fan_chart, time_axis


def test_time_axis_gives_the_history_before_the_origin_and_the_horizon_from_it():
    hist, fut = time_axis(3, 2, origin="2001-12-04 00:00", freq="h")
    assert list(hist) == list(pd.date_range("2001-12-03 21:00", periods=3, freq="h"))
    assert list(fut) == [pd.Timestamp("2001-12-04 00:00"), pd.Timestamp("2001-12-04 01:00")]


def test_time_axis_counts_steps_without_an_origin():
    hist, fut = time_axis(3, 2)
    assert list(hist) == [0, 1, 2] and list(fut) == [3, 4]


def test_fan_chart_with_dates_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    path = fan_chart(
        rng.normal(size=(48, 2)), rng.normal(size=(20, 24, 2)), tmp_path / "fan.png",
        truth=rng.normal(size=(24, 2)), names=["a", "b"], origin="2001-12-04", freq="h",
    )  # fmt: skip
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
