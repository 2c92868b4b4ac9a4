"""``tsdiff fit``: train a :class:`tsdiff.Forecaster` from YAML and a long CSV/parquet frame.

    tsdiff fit --config configs/ts/tmy3.yaml
    tsdiff fit --config configs/ts/tiny.yaml --data sales.csv --item-id store --timestamp date \
        --target units,returns --freq D --out runs/sales
    tsdiff fit --config configs/ts/elecdemand.yaml --print_config

The YAML holds the :class:`~tsdiff.ForecasterConfig` fields at the top level, a ``data:`` section
(:class:`DataConfig`) and ``out``. Short data flags are aliases: ``--data FILE`` = ``--data.path``,
``--item-id`` = ``--data.item_id``, ``--timestamp`` = ``--data.timestamp``, ``--target`` =
``--data.target``, ``--holdout-windows`` = ``--data.holdout_windows``. The trained forecaster is
saved to ``out`` (config.json + model.safetensors, atomically) with the resolved ``fit.yaml``.

``out`` is checked writable and locked (``out/.output.lock``) before the data is read: a second
``tsdiff fit`` (or ``Forecaster.save``) into the same folder fails at once with one line. While
training, Lightning's ``last.ckpt`` is written to ``out/.train/`` every ``--checkpoint-every``
steps (atomically; the one before kept as ``last-prev.ckpt``); ``--resume auto`` continues a
killed run from there (``--resume FILE``: from that checkpoint) and ends with the weights of an
uninterrupted run. The finished forecaster replaces ``out`` whole, ``.train/`` included.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd
from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser, set_parsing_settings

from lm_core.outputs import output_lock
from tsdiff.commands.io import read_frame
from tsdiff.config import ForecasterConfig
from tsdiff.features import parse_freq
from tsdiff.forecaster import Forecaster
from tsdiff.store import missing_folders, remove_empty

ALIASES = {
    "--data": "--data.path",
    "--item-id": "--data.item_id",
    "--timestamp": "--data.timestamp",
    "--target": "--data.target",
    "--holdout-windows": "--data.holdout_windows",
    "--print-config": "--print_config",
    "--checkpoint-every": "--checkpoint_every",
}
WORK_DIR = ".train"
"""The folder under ``--out`` that holds the checkpoints of a running fit."""


@dataclass
class DataConfig:
    """Where the long frame comes from and which columns play which role."""

    path: str | None = None
    """CSV (.csv, .csv.gz) or parquet file of the long frame, or embedded:tmy3 (shipped data)."""
    item_id: str = "item_id"
    """Column of series ids."""
    timestamp: str = "timestamp"
    """Column of timestamps (on the freq grid; unsorted rows are sorted)."""
    target: str | list[str] | None = None
    """Target column(s): a list or comma-separated names; null = every column that is not the id,
    the timestamp or a covariate."""
    holdout_windows: int = 0
    """Drop the last holdout_windows * prediction_length steps of every item before training, so
    that `tsdiff evaluate --windows K` on the same file is an honest backtest."""


def build_parser():
    """The jsonargparse parser of ``tsdiff fit`` (attribute docstrings are its help)."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    p = ArgumentParser(
        prog="tsdiff fit",
        description="Train a tsdiff forecaster. Short flags: --data FILE (= --data.path), "
        "--item-id COL, --timestamp COL, --target COL[,COL...], --holdout-windows K, --freq F, "
        "--out DIR.",
        exit_on_error=False,
    )
    p.add_argument("--config", action=ActionConfigFile, help="YAML config (configs/ts/*.yaml).")
    p.add_class_arguments(ForecasterConfig)
    p.add_class_arguments(DataConfig, "data")
    p.add_argument("--out", type=str, default="runs/tsdiff", help="Output checkpoint directory.")
    p.add_argument(
        "--resume", type=str | None, default=None,
        help="Continue a killed run: 'auto' (OUT/.train/last.ckpt if there is one, else start "
        "fresh) or a last.ckpt file.",
    )  # fmt: skip
    p.add_argument(
        "--checkpoint_every", type=int, default=100,
        help="Write OUT/.train/last.ckpt every this many training steps.",
    )  # fmt: skip
    return p


def _rewrite(argv: list[str]) -> list[str]:
    out = []
    for a in argv:
        key, eq, val = a.partition("=")
        out.append(ALIASES[key] + eq + val if key in ALIASES else a)
    return out


def parse(argv: list[str] | None) -> tuple[ForecasterConfig, DataConfig, str, object]:
    """argv -> (ForecasterConfig, DataConfig, out, namespace); one-line ValueError on bad input."""
    parser = build_parser()
    try:
        ns = parser.parse_args(_rewrite(list(argv or [])))
    except ArgumentError as e:
        raise ValueError(_one_line(str(e))) from None
    names = [f.name for f in fields(ForecasterConfig)]
    cfg = ForecasterConfig(**{k: ns[k] for k in names if k in ns})
    d = ns["data"]
    data = DataConfig(**{f.name: d[f.name] for f in fields(DataConfig)})
    if not isinstance(data.holdout_windows, int) or data.holdout_windows < 0:
        raise ValueError(
            f"data.holdout_windows: expected an integer >= 0, got {data.holdout_windows!r}"
        )
    return cfg, data, ns["out"], ns


def _one_line(msg: str) -> str:
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    return "; ".join(lines[:3]) if lines else "invalid configuration"


def targets_of(target: str | list[str] | None) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``; None stays None."""
    if target is None:
        return None
    items = target.split(",") if isinstance(target, str) else list(target)
    names = [str(t).strip() for t in items if str(t).strip()]
    if not names:
        raise ValueError("data.target: name at least one target column")
    return names


def drop_last_steps(
    df: pd.DataFrame, item_id: str, timestamp: str, n: int, freq: str
) -> pd.DataFrame:
    """Rows of every item before its last ``n`` steps of ``freq`` (by timestamp, so gaps count)."""
    if n <= 0:
        return df
    for col in (item_id, timestamp):
        if col not in df.columns:
            raise ValueError(f"unknown column {col!r}; the frame has {list(df.columns)}")
    try:
        ts = pd.to_datetime(df[timestamp])
    except (ValueError, TypeError) as e:
        raise ValueError(f"column {timestamp!r}: cannot parse as timestamps ({e})") from None
    off = parse_freq(freq)
    last = ts.groupby(df[item_id]).max()
    cut = {item: pd.Timestamp(end) - n * off for item, end in last.items()}
    return df[ts <= df[item_id].map(cut)]


def main(argv: list[str] | None = None) -> int:
    cfg, data, out, ns = parse(argv)
    if data.path is None:
        raise ValueError("data: give --data FILE (or data.path in the YAML)")
    every = ns["checkpoint_every"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"--checkpoint-every: expected a positive integer, got {every!r}")
    out, resume = Path(out), ns["resume"]
    work, fresh = out / WORK_DIR, missing_folders(out)
    try:
        with output_lock(out):  # writable and ours, before any data is read or step is trained
            if resume is None and (work / "last.ckpt").is_file():
                print(f"{work}: an interrupted run's checkpoint; starting afresh (--resume auto "
                      "would continue it)")  # fmt: skip
            df = read_frame(data.path)
            df = drop_last_steps(
                df, data.item_id, data.timestamp, data.holdout_windows * cfg.prediction_length,
                cfg.freq,
            )  # fmt: skip
            f = Forecaster(cfg).fit(
                df, target=targets_of(data.target), item_id=data.item_id,
                timestamp=data.timestamp, checkpoint_dir=work, resume=resume,
                checkpoint_every=every,
            )  # fmt: skip
            path = f.save(out, {"fit.yaml": build_parser().dump(ns)}, lock=False)
    except BaseException:  # no empty folders of a failed run; a started run's checkpoints stay
        remove_empty([work, *fresh])
        raise
    print(
        f"wrote {path}: {f.history.get('steps')} steps, targets {f.columns.targets}, "
        f"sampling temperature {f.temperature:g}, spread {f.spread:g}"
    )
    return 0


__all__ = ["DataConfig", "build_parser", "drop_last_steps", "main", "parse", "targets_of"]
