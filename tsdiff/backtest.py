"""Rolling-origin backtests of a fitted :class:`tsdiff.Forecaster` (its ``backtest`` method)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.data.frames import DataError
from tsdiff.data.windows import collate, make_window
from tsdiff.pretrained.zero_shot import bind_values


def backtest(
    f,
    df: pd.DataFrame,
    windows: int = 1,
    num_samples: int = 100,
    *,
    origins: list | None = None,
    seed: int = 0,
    **sampler,
) -> dict:
    """Rolling-origin backtest.

    The test windows are either the last ``windows`` non-overlapping horizons of every item,
    or, with ``origins`` (timestamps of the first forecast step, shared by all items), one
    window per item and origin (windows may overlap, e.g. daily origins of a 48-step horizon).
    Only data before each origin is seen; the model should have been fitted on data before the
    first origin.

    Returns {"samples": [N, S, H, C], "y": [N, H, C], "observed": bool [N, H, C],
    "insample": list of [T_i, C] arrays (history before each origin), "items", "origins",
    "nfe" (per path), "seconds" (sampling wall-clock)}; N = items x windows, item-major.
    """
    f._check_fitted()
    H, Lc = f.config.prediction_length, f.config.context_length
    ws, insample, items, starts, before = [], [], [], [], []
    for s in f._series(df):
        if origins is None:
            ends = [len(s) - k * H for k in range(windows, 0, -1)]
        else:
            ends = [int(s.index.get_indexer([pd.Timestamp(o)])[0]) for o in origins]
        for end in ends:
            if end < 1 or end + H > len(s):
                raise DataError(
                    f"item {s.item_id!r}: a backtest window of {H} steps at position {end} "
                    f"does not fit its {len(s)} steps (or its origin is not in the data)"
                )
            ws.append(make_window(s, end, Lc, H, f.config.freq, f.lags))
            insample.append(s.target[:end])
            items.append(s.item_id)
            starts.append(s.index[end])
        before.append(s.target[: min(ends, default=len(s))])
    if f.roles is not None:  # zero-shot: each target's domain from the history before every
        c = f.columns  # window, never from the values the backtest scores
        bind_values(f, c.targets, np.concatenate(before), c.item_id, c.timestamp)
    samples, stats = f.sample(ws, num_samples, seed, **sampler)
    batch = collate(ws)
    return {
        "samples": samples,
        "y": batch["fut"].numpy(),
        "observed": batch["fut_obs"].numpy(),
        "insample": insample,
        "items": items,
        "origins": starts,
        "nfe": stats.nfe,
        "seconds": stats.seconds,
    }
