"""Zero-shot forecasts with the base (Forecaster.from_pretrained), on the command line and as a
GluonTS predictor: no fit, the column roles and domain taken from the frame forecast."""

import numpy as np
import pandas as pd
import pytest
from gluonts.dataset.common import ListDataset

from tests.tsdiff.tiny import sine_frame
from tsdiff.cli import main as cli
from tsdiff.data.frames import DataError
from tsdiff.forecaster import Forecaster
from tsdiff.gluonts import TSDiffPredictor


def counts_frame(n=200):
    """Two items of a non-negative target with exact zeros (counts at night, say)."""
    rng = np.random.default_rng(1)
    rows = []
    for item in ("a", "b"):
        y = np.maximum(0.0, 5 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(0, 1, n))
        rows.append(pd.DataFrame({"item_id": item, "y": y,
                                  "timestamp": pd.date_range("2022-01-01", periods=n, freq="h")}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_from_pretrained_forecasts_any_frame_without_a_fit(packaged_tiny_base):
    f = Forecaster.from_pretrained(prediction_length=12, freq="h")
    fc = f.predict(sine_frame(), num_samples=20)  # targets: every column but id and time
    assert fc.samples.shape == (1, 20, 12, 2) and fc.targets == ["y", "x"]
    assert f.history["zero_shot"] and f.history["init"]["base"] == "tiny-test-base"
    # another frame, another role binding: one target named
    fc2 = f.predict(counts_frame(), num_samples=20)
    assert fc2.samples.shape == (2, 20, 12, 1)


def test_zero_shot_paths_respect_the_domain_of_the_frame(packaged_tiny_base):
    """A non-negative history gives non-negative paths, though the base never saw it."""
    f = Forecaster.from_pretrained(prediction_length=12, freq="h", target="y")
    fc = f.predict(counts_frame(), num_samples=50)
    assert fc.samples.min() >= 0.0
    bt = f.backtest(counts_frame(), windows=2, num_samples=10)
    assert bt["samples"].shape == (4, 10, 12, 1) and bt["samples"].min() >= 0.0


def test_a_zero_shot_backtest_never_reads_the_domain_from_what_it_scores(packaged_tiny_base):
    """The history is non-negative; the scored windows are not: the domain (and so the paths)
    follows the history, as a fit on it would."""
    df = counts_frame()
    df.loc[df.groupby("item_id").tail(24).index, "y"] = -5.0  # the last two 12-step windows
    f = Forecaster.from_pretrained(prediction_length=12, freq="h", target="y")
    bt = f.backtest(df, windows=2, num_samples=10)
    assert f.model.cfg.domain[0]["lower"] == 0.0 and bt["samples"].min() >= 0.0
    f.predict(df, num_samples=2)  # a forecast reads the whole frame: now it is real-valued
    assert f.model.cfg.domain[0]["lower"] is None


def test_zero_shot_refuses_what_the_base_cannot_serve(packaged_tiny_base):
    with pytest.raises(DataError, match="horizons of 1 to 16 steps"):
        Forecaster.from_pretrained(prediction_length=17, freq="h")
    with pytest.raises(ValueError, match="future_covariates: the tsdiff base forecasts zero-shot"):
        Forecaster.from_pretrained(prediction_length=4, freq="h", future_covariates=["x"])
    with pytest.raises(ValueError, match="d_model"):
        Forecaster.from_pretrained(prediction_length=4, freq="h", d_model=64)
    f = Forecaster.from_pretrained(prediction_length=4, freq="h", target="nope")
    with pytest.raises(DataError, match="'nope'"):
        f.predict(sine_frame())


def test_a_saved_zero_shot_forecaster_loads_and_forecasts_the_same(packaged_tiny_base, tmp_path):
    f = Forecaster.from_pretrained(prediction_length=6, freq="h", target="y")
    a = f.predict(counts_frame(), num_samples=8, seed=3).samples
    f.save(tmp_path / "zs")
    b = Forecaster.load(tmp_path / "zs").predict(counts_frame(), num_samples=8, seed=3).samples
    np.testing.assert_array_equal(a, b)


def test_the_command_line_forecasts_with_the_base(packaged_tiny_base, tmp_path, capsys):
    data, out = tmp_path / "d.csv", tmp_path / "fc.csv"
    counts_frame().to_csv(data, index=False)
    argv = ["forecast", "--model", "base", "--prediction-length", "5", "--freq", "h",
            "--data", str(data), "--output", str(out), "--no-progress"]  # fmt: skip
    assert cli(argv) == 0
    table = pd.read_csv(out)
    assert len(table) == 2 * 5 and {"y_mean", "y_q0.5"} <= set(table.columns)
    assert cli(argv[:3] + argv[5:]) == 2  # no --prediction-length
    assert "--prediction-length: required with --model" in capsys.readouterr().err
    assert cli(["forecast", "--model", str(tmp_path / "none"), *argv[3:]]) == 2
    assert "no tsdiff base there" in capsys.readouterr().err


def test_a_gluonts_predictor_on_the_base(packaged_tiny_base):
    y = counts_frame()
    ds = ListDataset(
        [{"start": pd.Period("2022-01-01 00:00", "h"), "target": g["y"].to_numpy(), "item_id": i}
         for i, g in y.groupby("item_id")], freq="h",
    )  # fmt: skip
    pred = TSDiffPredictor.from_pretrained(prediction_length=8, freq="h", num_samples=16)
    forecasts = list(pred.predict(ds))
    assert len(forecasts) == 2 and forecasts[0].samples.shape == (16, 8)
    assert min(fc.samples.min() for fc in forecasts) >= 0.0
