"""Windows with seasonal lags: every step gets the value one season earlier, never a future one."""

import numpy as np
import pandas as pd
import torch

from tsdiff.data.frames import Columns, frame_to_series
from tsdiff.data.windows import collate, make_window, split_channels
from tsdiff.model import NumericDenoiser, TSModelConfig

L, H = 6, 4


def series(n=40, channels=("y",)):
    t = pd.date_range("2021-01-01", periods=n, freq="D")
    df = pd.DataFrame({"item_id": "a", "timestamp": t})
    for k, c in enumerate(channels):
        df[c] = np.arange(n, dtype=float) + 100 * k
    df.loc[3, "y"] = np.nan
    return frame_to_series(df, Columns(list(channels)), "D")[0]


def test_lag_is_the_value_one_season_earlier():
    s, end, lag = series(), 20, 7
    w = make_window(s, end, L, H, "D", lags=(lag,))
    assert w["lag_ctx"].shape == (L, 1, 1) and w["lag_fut"].shape == (H, 1, 1)
    np.testing.assert_array_equal(w["lag_ctx"][:, 0, 0], np.arange(end - L, end) - lag)
    np.testing.assert_array_equal(w["lag_fut"][:, 0, 0], np.arange(end, end + H) - lag)
    assert w["lag_ctx_obs"].all() and w["lag_fut_obs"].all()


def test_lag_is_unobserved_before_the_series_on_missing_values_and_in_the_future():
    s = series()
    w = make_window(s, 8, L, H, "D", lags=(7,))  # context steps 2..7 look back to -5..0
    np.testing.assert_array_equal(w["lag_ctx_obs"][:, 0, 0], [False] * 5 + [True])
    w = make_window(s, 10, L, H, "D", lags=(7,))  # step 10 reads step 3, which is NaN
    assert not w["lag_fut_obs"][0, 0, 0] and w["lag_fut"][0, 0, 0] == 0.0
    # lag 2 < H: horizon steps 2 and 3 would read steps 20 and 21, the horizon itself
    w = make_window(s, 20, L, H, "D", lags=(2,))
    np.testing.assert_array_equal(w["lag_fut_obs"][:, 0, 0], [True, True, False, False])
    np.testing.assert_array_equal(w["lag_fut"][:, 0, 0], [18, 19, 0, 0])


def test_no_lags_no_lag_arrays_and_channels_split_their_own_lags():
    s = series(channels=("y", "x"))
    assert not any(k.startswith("lag") for k in make_window(s, 20, L, H, "D"))
    w = make_window(s, 20, L, H, "D", lags=(7, 14))
    assert w["lag_fut"].shape == (H, 2, 2)
    x_only = split_channels([w])[1]
    np.testing.assert_array_equal(x_only["lag_fut"][:, 0, 1], 100 + np.arange(20, 24) - 14)


def test_the_denoiser_reads_its_lags():
    cfg = TSModelConfig(
        context_length=L, prediction_length=H, n_channels=1, patch_size=2, n_bins=16,
        d_model=16, n_layers=1, n_heads=2, n_time_features=2, lags=[7],
    )  # fmt: skip
    torch.manual_seed(0)
    m = NumericDenoiser(cfg).eval()
    s = series()
    s.time_feat = np.zeros((len(s), 2), np.float32)
    batch = collate([make_window(s, 20, L, H, "D", lags=(7,))])
    fut = dict(batch, lag_fut=batch["lag_fut"] + 5.0)
    ctx = dict(batch, lag_ctx=batch["lag_ctx"] - 3.0)
    with torch.no_grad():
        static = [m.horizon(x).static for x in (batch, fut, ctx)]
        tokens = [m.context_tokens(m.scale_batch(x))[0] for x in (batch, fut, ctx)]
    assert static[0].shape == (1, H, 16)
    assert not torch.allclose(static[0], static[1]) and torch.equal(static[0], static[2])
    assert torch.equal(tokens[0], tokens[1]) and not torch.allclose(tokens[0], tokens[2])
