"""A batch of sample-path forecasts and its summaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsdiff.features import parse_freq


@dataclass
class Forecast:
    """Sample paths ``samples`` [items, samples, horizon, channels] with their item ids and start times."""

    samples: np.ndarray
    item_ids: list[str]
    starts: list[pd.Timestamp]
    freq: str
    targets: list[str]
    nfe: int = 0

    def mean(self) -> np.ndarray:
        """[items, horizon, channels]."""
        return self.samples.mean(axis=1)

    def quantile(self, q: float) -> np.ndarray:
        """[items, horizon, channels] sample quantile at level q."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q: expected a level in [0, 1], got {q}")
        return np.quantile(self.samples, q, axis=1)

    def index(self, i: int) -> pd.DatetimeIndex:
        return pd.date_range(
            self.starts[i], periods=self.samples.shape[2], freq=parse_freq(self.freq)
        )

    def to_dataframe(self, quantiles=(0.1, 0.5, 0.9)) -> pd.DataFrame:
        """Long frame: item_id, timestamp, then ``<target>_mean`` and ``<target>_q<level>`` columns."""
        rows = []
        mean = self.mean()
        qs = {q: self.quantile(q) for q in quantiles}
        for i, item in enumerate(self.item_ids):
            d = {"item_id": item, "timestamp": self.index(i)}
            for c, name in enumerate(self.targets):
                d[f"{name}_mean"] = mean[i, :, c]
                for q in quantiles:
                    d[f"{name}_q{q:g}"] = qs[q][i, :, c]
            rows.append(pd.DataFrame(d))
        return pd.concat(rows, ignore_index=True)

    def samples_dataframe(self) -> pd.DataFrame:
        """Long frame of every path: item_id, sample, timestamp, one column per target."""
        rows = []
        N, S, H, C = self.samples.shape
        for i, item in enumerate(self.item_ids):
            idx = self.index(i)
            d = {
                "item_id": item,
                "sample": np.repeat(np.arange(S), H),
                "timestamp": np.tile(idx, S),
            }
            for c, name in enumerate(self.targets):
                d[name] = self.samples[i, :, :, c].reshape(-1)
            rows.append(pd.DataFrame(d))
        return pd.concat(rows, ignore_index=True)
