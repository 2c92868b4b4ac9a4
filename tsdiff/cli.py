"""``tsdiff`` command line: a dispatcher over ``tsdiff.commands.<name>``.

    tsdiff fit --config configs/ts/tmy3.yaml [--data FILE --target a,b --freq h --out DIR]
    tsdiff forecast --ckpt DIR --data FILE --output forecast.csv [--num-samples 100]
    tsdiff evaluate --ckpt DIR --data FILE --windows 7 [--json m.json] [--plots DIR]
    tsdiff rollout --ckpt DIR --history FILE --plans FILE --horizon 96 --output FILE [--plots DIR]
    tsdiff board --tasks tasks.yaml --model base --output results.csv   (fev tasks; tsdiff.fev)

Errors in the user's data, flags, checkpoints or output places print one line, ``tsdiff <cmd>:
error: ...``, and exit with status 2 (no traceback): ``DataError`` / ``ValueError``,
``FileNotFoundError``, :class:`~lm_core.checkpoint.CheckpointError` (a missing, corrupt or
truncated checkpoint), :class:`~lm_core.outputs.OutputError` (an output folder that is read-only,
full, or locked by another writer) and any other ``OSError`` (named file and OS reason).
"""

from __future__ import annotations

import importlib
import sys

from lm_core.outputs import OutputError, one_line

COMMANDS = {
    "fit": "train a forecaster from a YAML config and a long CSV/parquet frame",
    "forecast": "sample paths for the steps after each item's end; write mean and quantiles",
    "evaluate": "rolling-origin backtest: metric table beside seasonal naive, JSON, PNGs",
    "rollout": "futures under each candidate action plan (common random numbers), table + figure",
    "board": "score tsdiff on fev tasks (fev-bench, GIFT-Eval): fev's summary per task",
}


def main(argv: list[str] | None = None) -> int:
    """Run ``tsdiff <command> [options]``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: tsdiff {" + ",".join(COMMANDS) + "} [options]\n")
        for name, what in COMMANDS.items():
            print(f"  {name:<10} {what}")
        print("\n`tsdiff <command> --help` documents every flag.")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"tsdiff: error: unknown command {name!r}; choose from {list(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"tsdiff.commands.{name}")
    try:
        return int(module.main(rest) or 0)
    except (ValueError, OutputError) as e:  # DataError, CheckpointError are ValueErrors
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"tsdiff {name}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # FileNotFoundError, a full disk, a read-only or forbidden place
        where = f"{e.filename}: " if e.filename else ""
        msg = where + (e.strerror or one_line(e))
        print(f"tsdiff {name}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tsdiff {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
