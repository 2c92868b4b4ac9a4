"""Numeric data for tsdiff: long DataFrames in, windows out; the embedded TMY3 default data set."""

from tsdiff.data.datasets import TMY3_CHANNELS, load_tmy3

__all__ = ["TMY3_CHANNELS", "load_tmy3"]
