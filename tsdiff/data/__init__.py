"""Numeric data for tsdiff: long DataFrames in, windows out; the embedded TMY3 default data set."""

from tsdiff.data.datasets import TMY3_CHANNELS, load_tmy3, load_tmy3_benchmark
from tsdiff.data.protocol import Protocol, window_splits

__all__ = ["TMY3_CHANNELS", "Protocol", "load_tmy3", "load_tmy3_benchmark", "window_splits"]
