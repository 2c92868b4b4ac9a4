"""`tsdiff fit / forecast / evaluate` end to end on a tiny CSV, and one-line user errors."""

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff.cli import main

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "ts" / "tiny.yaml")


@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for item in ("north", "south"):
        t = np.arange(96)
        y = 10 + np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, len(t))
        ts = pd.date_range("2021-01-01", periods=len(t), freq="h")
        rows.append(pd.DataFrame({"site": item, "time": ts, "load": y, "temp": y * 2}))
    path = tmp_path_factory.mktemp("cli") / "data.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def ckpt(csv) -> Path:
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    out = csv.parent / "ckpt"
    argv = ["fit", "--config", TINY, "--data", str(csv), "--item-id", "site", "--timestamp"]
    argv += ["time", "--target", "load,temp", "--holdout-windows", "2", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    assert (out / "model.safetensors").is_file() and (out / "fit.yaml").is_file()
    return out


def test_forecast_writes_mean_quantiles_and_samples(ckpt, csv, tmp_path):
    out, paths = tmp_path / "fc.csv", tmp_path / "paths.csv"
    argv = ["forecast", "--ckpt", str(ckpt), "--data", str(csv), "--output", str(out)]
    argv += ["--num-samples", "8", "--samples-output", str(paths), "--no-progress"]
    assert main(argv) == 0
    fc = pd.read_csv(out)
    assert list(fc.columns[:4]) == ["item_id", "timestamp", "load_mean", "load_q0.1"]
    assert len(fc) == 2 * 4 and np.isfinite(fc.filter(like="_q").to_numpy()).all()
    assert len(pd.read_csv(paths)) == 2 * 8 * 4
    assert not list(tmp_path.glob(".*tmp*"))  # temporary files renamed away


def test_evaluate_table_json_and_plots(ckpt, csv, tmp_path, capsys):
    js, plots = tmp_path / "m.json", tmp_path / "plots"
    argv = ["evaluate", "--ckpt", str(ckpt), "--data", str(csv), "--windows", "2"]
    argv += ["--num-samples", "8", "--json", str(js), "--plots", str(plots), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    for key in ("crps", "wql", "energy_score", "cov90", "calibration_error", "msis", "mase"):
        assert key in text
    doc = json.loads(js.read_text())
    assert doc["protocol"]["windows"] == 4 and doc["protocol"]["season"] == 24
    assert set(doc["tsdiff"]) >= {"crps", "wql", "cov50", "cov95", "energy_score"}
    assert "crps" in doc["seasonal_naive"] and sum(doc["pit_histogram"]) > 0
    assert {p.name for p in plots.glob("*.png")} == {"fan_north.png", "fan_south.png", "pit.png"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["forecast", "--ckpt", "/nonexistent", "--data", "x.csv", "--output", "o.csv"], "ckpt"),
        (
            ["forecast", "--ckpt", "{ckpt}", "--data", "/no/such.csv", "--output", "o.csv"],
            "no such file",
        ),
        (
            ["forecast", "--ckpt", "{ckpt}", "--data", "{csv}", "--output", "o.txt"],
            ".csv or .parquet",
        ),
        (
            [
                "forecast",
                "--ckpt",
                "{ckpt}",
                "--data",
                "{csv}",
                "--output",
                "o.csv",
                "--num-samples",
                "0",
            ],
            "--num-samples",
        ),
        (["evaluate", "--ckpt", "{ckpt}", "--data", "{csv}", "--windows", "50"], "item 'north'"),
        (["fit", "--config", TINY, "--data", "{csv}", "--target", "nope"], "unknown column"),
        (["fit", "--config", TINY, "--data", "{csv}", "--freq", "fortnightly-ish"], "freq"),
        (
            [
                "fit",
                "--config",
                TINY,
                "--data",
                "{csv}",
                "--item-id",
                "site",
                "--timestamp",
                "time",
                "--target",
                "load",
                "--freq",
                "D",
            ],
            "grid",
        ),
        (["fit", "--config", TINY, "--max_steps", "-3"], "max_steps"),
        (["fit", "--config", TINY], "--data FILE"),
    ],
)
def test_user_errors_are_one_line(argv, message, ckpt, csv, capsys):
    argv = [a.format(ckpt=ckpt, csv=csv) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"tsdiff {argv[0]}: error: ")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_help(capsys):
    assert main(["--help"]) == 0
    assert "evaluate" in capsys.readouterr().out
    for cmd in ("fit", "forecast", "evaluate"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "--data" in capsys.readouterr().out
    assert main(["bogus"]) == 2


def test_forecast_with_known_future_covariates(csv, tmp_path):
    out = tmp_path / "ck"
    argv = ["fit", "--config", TINY, "--data", str(csv), "--item-id", "site", "--timestamp"]
    argv += ["time", "--target", "load", "--future_covariates", "[temp]", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    df = pd.read_csv(csv, parse_dates=["time"])
    fut = df.groupby("site").tail(4).copy()
    fut["time"] += pd.Timedelta(hours=4)
    fut_path = tmp_path / "future.csv"
    fut.drop(columns=["load"]).to_csv(fut_path, index=False)
    fc = tmp_path / "fc.csv"
    argv = ["forecast", "--ckpt", str(out), "--data", str(csv), "--output", str(fc)]
    assert main(argv + ["--future", str(fut_path), "--num-samples", "4", "--no-progress"]) == 0
    assert np.isfinite(pd.read_csv(fc)["load_mean"]).all()
    assert main(argv) == 2  # the future covariates are required
