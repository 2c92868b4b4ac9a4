"""tsdiff as a model of ``fev``: tasks on a small data set written locally in fev's format.

Nothing is downloaded: the data is a parquet file under tmp_path, the Hugging Face hub and
datasets libraries are set offline and sockets refuse to connect while these tests run.
"""

import logging
import socket
import sys
import warnings

import datasets
import fev
import numpy as np
import pandas as pd
import pytest
import torch

import tsdiff
from tsdiff import boards
from tsdiff.board_windows import (
    SEP,
    merge_univariate,
    to_predictions,
    to_univariate,
    window_frames,
)
from tsdiff.boards import Fitted, evaluate_task
from tsdiff.cli import main
from tsdiff.fev import main as fev_main
from tsdiff.forecast import Forecast
from tsdiff.forecaster import Forecaster

H = 4
TINY = dict(d_model=32, n_layers=1, n_heads=2, max_steps=10, calibrate=False, n_bins=64)
TINY_SETS = [f"{k}={str(v).lower()}" for k, v in TINY.items()] + ["batch_size=8"]
TASK_FIELDS = dict(horizon=H, num_windows=2, seasonality=7, eval_metric="WQL")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No hub, no network: fev must read the local files only (its cache goes to tmp_path)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")

    connect = socket.socket.connect

    def refuse(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network access to {address} in an offline test")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def write_fev_parquet(path, n_items=3, n=60, promo=True, seed=0):
    """fev's format: one row per series, timestamps and values as sequences (a weekly sine
    around 10, lifted by 2 where the known covariate ``promo`` is 1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_items):
        t = np.arange(n)
        flag = ((t + i) % 5 == 0).astype(float)
        y = 10 + np.sin(2 * np.pi * t / 7) + 2 * flag + 0.1 * rng.standard_normal(n)
        row = {"id": f"s{i}", "timestamp": pd.date_range("2021-01-01", periods=n, freq="D")}
        row["target"], row["other"] = y, 5 + np.cos(2 * np.pi * t / 7)
        if promo:
            row["promo"] = flag
        rows.append(pd.DataFrame(row))
    ds = fev.utils.convert_long_df_to_hf_dataset(pd.concat(rows, ignore_index=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fev")
    write_fev_parquet(root / "plain" / "data.parquet", promo=False)
    write_fev_parquet(root / "promo" / "data.parquet", seed=1)
    return root


def task_of(data_dir, name="promo", **fields):
    return fev.Task(
        dataset_path=str(data_dir / name / "data.parquet"),
        **{**TASK_FIELDS, "quantile_levels": [0.1, 0.5, 0.9], **fields},
    )


def write_yaml(folder, tasks):
    lines = ["tasks:"]
    for t in tasks:
        lines.append(f"- dataset_path: {t['dataset_path']}")
        lines += [f"  {k}: {v}" for k, v in t.items() if k != "dataset_path"]
    path = folder / "tasks.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Ramp:
    """A stand-in forecaster: item ``s<k>`` gets paths ``100 k + sample`` at every step, for
    each target channel (10 more for an item id ending in ``other``: a univariate split one),
    listed in reverse item order (the adapter must put fev's back)."""

    config = None
    columns = None

    def __init__(self, targets=("target",), samples=11):
        self.targets, self.samples, self.calls = list(targets), samples, []

    def predict(self, df, num_samples=100, *, seed=0, future=None):
        self.calls.append((df, future))
        items = sorted(df["item_id"].unique(), reverse=True)
        base = np.array([100.0 * int(i[1]) + 10.0 * i.endswith("other") for i in items])
        paths = base[:, None, None, None] + np.arange(self.samples)[None, :, None, None]
        paths = np.broadcast_to(paths, (len(items), self.samples, H, len(self.targets)))
        starts = [df[df.item_id == i].timestamp.max() + pd.Timedelta("1D") for i in items]
        return Forecast(paths.copy(), items, starts, "D", self.targets)


# ------------------------------------------------------------------ data in, predictions out
def test_window_frames_are_tsdiff_long_frames(data_dir):
    task = task_of(data_dir, known_dynamic_columns=["promo"])
    window = next(iter(task.iter_windows(num_proc=0)))
    past, future, ids = window_frames(window)
    assert ids == ["s0", "s1", "s2"]
    assert set(past.columns) == {"item_id", "timestamp", "target", "promo"}
    assert set(future.columns) == {"item_id", "timestamp", "promo"}  # no target in the future
    assert (past.groupby("item_id").size() == 60 - 2 * H).all()
    assert (future.groupby("item_id").size() == H).all()
    assert future.timestamp.min() > past.timestamp.max()


def test_predictions_have_fevs_columns_item_order_and_ordered_quantiles(data_dir):
    task = task_of(data_dir, quantile_levels=[0.9, 0.1, 0.5])
    window = next(iter(task.iter_windows(num_proc=0)))
    past, _, ids = window_frames(window)
    fc = Ramp().predict(past)
    preds = to_predictions(fc, task, ids)
    assert list(preds) == ["target"]
    assert preds["target"].column_names == ["predictions", "0.1", "0.5", "0.9"]
    table = {c: np.array(preds["target"][c]) for c in preds["target"].column_names}
    assert table["predictions"].shape == (3, H)
    # rows follow fev's ids (s0, s1, s2), not the forecaster's (s2, s1, s0): median 100 k + 5
    np.testing.assert_allclose(table["predictions"][:, 0], [5.0, 105.0, 205.0])
    np.testing.assert_allclose(table["0.1"][:, 0], [1.0, 101.0, 201.0])
    assert (table["0.1"] <= table["0.5"]).all() and (table["0.5"] <= table["0.9"]).all()
    mean = to_predictions(fc, task, ids, point="mean")["target"]["predictions"]
    np.testing.assert_allclose(np.array(mean)[:, 0], [5.0, 105.0, 205.0])
    task.clean_and_validate_predictions(preds)  # fev accepts them as they are


def test_non_finite_paths_or_a_lost_item_are_one_line_errors(data_dir):
    task = task_of(data_dir)
    window = next(iter(task.iter_windows(num_proc=0)))
    past, _, ids = window_frames(window)
    fc = Ramp().predict(past)
    fc.samples[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        to_predictions(fc, task, ids)
    with pytest.raises(ValueError, match=r"no forecast for item\(s\) \['s3'\]"):
        to_predictions(Ramp().predict(past), task, [*ids, "s3"])


def test_multivariate_task_gets_one_dataset_per_target(data_dir):
    task = task_of(data_dir, target=["target", "other"], eval_metric="MASE")
    ramp = Ramp(targets=["target", "other"])
    summary = evaluate_task(
        task, factory=lambda t, past, targets: Fitted(ramp, False), num_samples=11
    )
    df, future = ramp.calls[0]
    assert set(df.columns) == {"item_id", "timestamp", "other", "target"} and future is None
    assert summary["num_forecasts"] == 2 * 3 * 2  # windows x items x targets
    assert np.isfinite(summary["test_error"]) and summary["trained_on_this_dataset"] is False


def test_univariate_splits_targets_into_items_and_merges_them_back(data_dir):
    task = task_of(data_dir, target=["target", "other"], known_dynamic_columns=["promo"])
    past, future, ids = window_frames(next(iter(task.iter_windows(num_proc=0))))
    upast, ufuture, name = to_univariate(past, future, task.target_columns)
    assert name == "target" and set(upast.columns) == {"item_id", "timestamp", "target", "promo"}
    assert upast.item_id.nunique() == 6 and ufuture.item_id.nunique() == 6
    one = upast[upast.item_id == "s1" + SEP + "other"]
    np.testing.assert_array_equal(one.target, past[past.item_id == "s1"].other)
    fc = merge_univariate(Ramp().predict(upast), ids, ["other", "target"])
    assert fc.samples.shape == (3, 11, H, 2) and fc.item_ids == ids
    np.testing.assert_allclose(fc.samples[:, 0, 0, :], [[10, 0], [110, 100], [210, 200]])


def test_univariate_task_run_with_a_one_target_model(data_dir, fitted_folder):
    task = task_of(data_dir, target=["target", "other"], known_dynamic_columns=["promo"])
    ramp = Ramp()
    summary = evaluate_task(
        task, factory=lambda t, past, targets: Fitted(ramp, False), univariate=True
    )
    assert summary["num_forecasts"] == 2 * 3 * 2 and summary["univariate"] is True
    assert ramp.calls[0][0].item_id.nunique() == 6
    with pytest.raises(ValueError, match="or forecast each target alone: --univariate"):
        evaluate_task(task, str(fitted_folder), num_samples=4)  # one channel, two targets
    assert np.isfinite(
        evaluate_task(task, str(fitted_folder), num_samples=4, univariate=True)["test_error"]
    )


def test_hub_configs_are_read_from_a_local_mirror_offline(data_dir, monkeypatch, tmp_path):
    """fev-bench tasks name hub configs (``autogluon/fev_datasets``, ``dataset_config``);
    with ``FEV_DATASETS_PREFIX`` fev reads ``<prefix>/<config>/*.parquet`` instead."""

    def run(config):
        task = fev.Task(
            dataset_path="autogluon/fev_datasets", dataset_config=config, **TASK_FIELDS,
            quantile_levels=[0.1, 0.5, 0.9],
        )  # fmt: skip
        return evaluate_task(task, factory=lambda t, past, targets: Fitted(Ramp(), False))

    monkeypatch.setenv("FEV_DATASETS_PREFIX", str(data_dir))
    summary = run("promo")
    assert summary["dataset_config"] == "promo" and np.isfinite(summary["test_error"])
    with pytest.raises(ValueError, match=r"task 'absent': cannot load its data .*PREFIX"):
        run("absent")


# ------------------------------------------------------------------ real tsdiff forecasters
@pytest.fixture(scope="module")
def fitted_folder(data_dir, tmp_path_factory):
    """A tiny tsdiff forecaster trained on the promo set's first window (promo as a known
    covariate), saved as ``Forecaster.save`` writes it."""
    torch.set_num_threads(1)
    task = task_of(data_dir, known_dynamic_columns=["promo"])
    past, _, _ = window_frames(next(iter(task.iter_windows(num_proc=0))))
    f = Forecaster(prediction_length=H, freq="D", future_covariates=["promo"], batch_size=8, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f.fit(past, target="target")
    out = tmp_path_factory.mktemp("model") / "tiny"
    f.save(out)
    return out


def test_scratch_fits_per_task_with_the_known_covariate_and_scores(data_dir):
    task = task_of(data_dir, known_dynamic_columns=["promo"], extra_metrics=["MASE"])
    seen = {}

    def factory(task, past, targets):
        fitted = boards.default_factory("scratch", budget_s=30, options={**TINY, "batch_size": 8})
        out = fitted(task, past, targets)
        seen["f"] = out.forecaster
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = evaluate_task(task, "scratch", factory=factory, num_samples=16)
    assert seen["f"].config.future_covariates == ["promo"]
    assert seen["f"].config.prediction_length == H and seen["f"].config.freq == "D"
    assert summary["trained_on_this_dataset"] is True and summary["training_time_s"] > 0
    assert np.isfinite(summary["test_error"]) and np.isfinite(summary["MASE"])
    assert summary["test_error"] == summary["WQL"] and summary["num_forecasts"] == 6


def test_a_saved_folder_forecasts_with_its_covariate(data_dir, fitted_folder):
    task = task_of(data_dir, known_dynamic_columns=["promo"])
    summary = evaluate_task(task, str(fitted_folder), num_samples=16)
    assert summary["model_name"] == "tsdiff-tiny" and np.isfinite(summary["test_error"])
    assert summary["trained_on_this_dataset"] is False
    plain = task_of(data_dir, "plain")  # the model needs promo, this task has none
    with pytest.raises(ValueError, match=r"needs covariate column\(s\) \['promo'\]"):
        evaluate_task(plain, str(fitted_folder), num_samples=4)


def test_base_comes_from_from_pretrained_with_the_tasks_horizon_and_freq(
    data_dir, fitted_folder, monkeypatch
):
    calls = []

    def from_pretrained(prediction_length, freq):
        calls.append((prediction_length, freq))
        return Forecaster.load(fitted_folder)  # stands in for the packaged base

    monkeypatch.setattr(Forecaster, "from_pretrained", from_pretrained, raising=False)
    task = task_of(data_dir, known_dynamic_columns=["promo"])
    summary = evaluate_task(task, "base", num_samples=8)
    assert calls == [(H, "D")]
    assert summary["model_name"] == "tsdiff-base" and not summary["trained_on_this_dataset"]
    assert np.isfinite(summary["test_error"])


def test_finetune_passes_init_base_to_fit(data_dir, packaged_tiny_base):
    """``finetune`` is the scratch fit with ``init="base"`` (the base's shape, so only the
    training settings are given)."""
    task = task_of(data_dir, "plain")
    options = {"max_steps": 10, "calibrate": False, "batch_size": 8}
    make = boards.default_factory("finetune", budget_s=30, options=options)
    past, _, _ = window_frames(next(iter(task.iter_windows(num_proc=0))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = make(task, past, ["target"])
    assert fitted.trained_on_this_dataset
    assert fitted.forecaster.history["init"]["finetune"] == "full"  # the default
    assert np.isfinite(fitted.forecaster.predict(past, num_samples=4).samples).all()


# ------------------------------------------------------------------ the command
def test_board_command_writes_one_summary_row_per_task(data_dir, tmp_path, capsys):
    tasks = write_yaml(
        data_dir,
        [
            {
                "dataset_path": "plain/data.parquet",
                **TASK_FIELDS,
                "quantile_levels": "[0.1, 0.5, 0.9]",
            },
            {
                "dataset_path": "promo/data.parquet",
                **TASK_FIELDS,
                "quantile_levels": "[0.1, 0.5, 0.9]",
                "known_dynamic_columns": "[promo]",
            },
        ],
    )
    out = tmp_path / "res" / "results.csv"
    argv = ["--tasks", str(tasks), "--model", "scratch", "--budget-s", "30", "--output", str(out)]
    argv += ["--num-samples", "8"] + [x for s in TINY_SETS for x in ("--set", s)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fev_main(argv) == 0
    res = pd.read_csv(out)
    assert list(res.task_name) == ["plain", "promo"] and len(res) == 2
    assert list(res.dataset_path) == ["plain/data.parquet", "promo/data.parquet"]  # as written
    assert np.isfinite(res.test_error).all() and (res.model_name == "tsdiff-scratch").all()
    assert not [p for p in out.parent.iterdir() if p.name != "results.csv"]  # no temp files
    text = capsys.readouterr().out
    assert "[2/2] promo: WQL" in text and f"wrote {out}" in text
    assert len(fev.pivot_table(str(out))) == 2  # fev reads the summaries back


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tasks", "/no/such.yaml"], "tasks: no such file '/no/such.yaml'"),
        (["--model", "gpt"], "model: expected one of ['base', 'scratch', 'finetune']"),
        (["--set", "d_modle=3"], "--set: unknown Forecaster setting 'd_modle'"),
        (["--output", "{tmp}/r.txt"], "expected a .csv or .parquet file name"),
        (["--tasks", "{tmp}/bad.yaml"], "tasks[0]: horizn: Unexpected keyword argument"),
        (["--tasks", "{tmp}/gone.yaml"], "dataset_path: no such file"),
    ],
)
def test_board_bad_input_is_one_line(data_dir, tmp_path, capsys, argv, message):
    write_yaml(tmp_path, [{"dataset_path": "x/data.parquet", "horizn": 3}]).rename(
        tmp_path / "bad.yaml"
    )
    write_yaml(tmp_path, [{"dataset_path": "x/data.parquet", "horizon": 3}]).rename(
        tmp_path / "gone.yaml"
    )
    good = {"dataset_path": "plain/data.parquet", **TASK_FIELDS, "quantile_levels": "[0.5]"}
    good = write_yaml(data_dir, [good])
    args = {"--tasks": str(good), "--model": "base", "--output": str(tmp_path / "r.csv")}
    args.update(dict(zip(argv[::2], [v.format(tmp=tmp_path) for v in argv[1::2]], strict=True)))
    flat = [x for kv in args.items() for x in kv]
    assert main(["board", *flat]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tsdiff board: error:") and "\n" not in err
    assert message in err
    assert not (tmp_path / "r.csv").exists()


def test_board_without_fev_installed_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "fev", None)  # import fev now raises ImportError
    monkeypatch.delitem(sys.modules, "tsdiff.boards")
    monkeypatch.delattr(tsdiff, "boards")
    argv = ["board", "--tasks", "t.yaml", "--output", str(tmp_path / "r.csv")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'tsdiff[fev]'" in err
