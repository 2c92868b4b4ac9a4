"""Zero-shot predict time of the pretrained base against paths per network row (issue 23).

    python -m benchmarks.zero_shot_speed                      # the 4 slowest held-out sets, branch 4,8,16
    python -m benchmarks.zero_shot_speed --sets taylor --branches 4,8 --threads 2
    python -m benchmarks.zero_shot_speed --quick                      # gasoline, the first 2 branches

Protocol: the suite's data and windows (``benchmarks.datasets``, the held-out sets of
``benchmarks.pretrain_split``), ``Forecaster.from_pretrained(prediction_length=H, freq=F,
branch=B)`` with the packaged base (or ``$TSDIFF_BASE``), ``backtest`` with 100 paths and seed 0,
one process, ``--threads`` torch threads; nothing else should run on the machine. ``branch`` is
the sampler's paths per network row (``tsdiff.config.SamplerSection``): the network cost is that
of 100 / B paths, and the B paths of a row share the cells committed before the last step. Per
(set, branch): ms per series-window (window x target channel, whole backtest call), wQL, CRPS and
horizon-sum CRPS (``benchmarks.suite_metrics``). Goal (issue 23): <= 50 ms per series-window on 2
cores. Writes ``results/zero_shot_speed.csv`` (rows keyed by set and branch).
"""

from __future__ import annotations

from benchmarks import datasets
from benchmarks.common import base_parser, finish, machine, quiet
from benchmarks.suite import Truth
from benchmarks.suite_models import base_folder, tsdiff_zeroshot

SETS = ("taylor", "elecdemand", "bikesharing", "elecdaily")
COLUMNS = ("set", "branch", "ms_per_series_window", "wql", "crps", "crps_sum", "n_windows")


def measure(df, protocol, branches, seed: int = 0) -> list[dict]:
    """One row per branch: the suite's zero-shot runner (``suite_models.tsdiff_zeroshot``) on
    every test window of ``protocol``, scored as a suite piece."""
    truth, n_series = Truth.of(df, protocol), len(protocol.target_columns)
    rows = []
    for b in branches:
        fc = tsdiff_zeroshot(df, protocol, seed, branch=b)
        s = truth.score(fc, protocol)
        n = len(truth.windows)
        rows.append({"set": protocol.name, "branch": b, "n_windows": n,
                     "ms_per_series_window": 1000 * fc.predict_s / (n * n_series),
                     "wql": s["wql"], "crps": s["crps"], "crps_sum": s["crps_sum"]})  # fmt: skip
    return rows


def main(argv=None) -> int:
    ap = base_parser(__doc__)
    ap.add_argument("--sets", default=",".join(SETS), help="suite sets (default: %(default)s)")
    ap.add_argument("--branches", default="4,8,16", help="paths per network row to compare")
    args = ap.parse_args(argv)
    quiet(args.threads)
    try:
        branches = [int(b) for b in args.branches.split(",")]
    except ValueError:
        raise SystemExit(
            f"--branches: expected integers separated by commas, got {args.branches!r}"
        ) from None
    sets = ["gasoline"] if args.quick else args.sets.split(",")
    branches = branches[:2] if args.quick else branches
    rows = []
    for name in sets:
        df, proto = datasets.load(name)
        rows += measure(df, proto, branches)
        print("  " + "; ".join(f"branch {r['branch']}: {r['ms_per_series_window']:.1f} ms, wQL "
                               f"{r['wql']:.4f}" for r in rows[-len(branches):]), flush=True)  # fmt: skip
    meta = {**machine(), "threads": args.threads, "base": str(base_folder() or "packaged")}
    finish("zero_shot_speed", rows, list(COLUMNS), args.out, meta, key=("set", "branch"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
