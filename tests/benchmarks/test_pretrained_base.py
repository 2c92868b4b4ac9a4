"""The pretrained-base benchmark (benchmarks.pretrained_base): its pieces, the aggregation of
their rows into the issue's goals (on hand-made rows, no training), and the zero-shot runner of
the suite on a tiny base."""

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import pretrained_base as PB
from benchmarks import suite_models
from benchmarks import zero_shot_speed as ZS
from benchmarks.common import read_csv_rows
from benchmarks.suite import read_pieces, write_piece
from benchmarks.suite_metrics import N_PATHS
from tsdiff.data.protocol import Protocol
from tsdiff.model import NumericDenoiser
from tsdiff.model_config import TSModelConfig
from tsdiff.pretrained import Base, save_base

HELD = ("gasoline", "m1_yearly", "elecdaily")  # held out from pretraining
SEEN = "tmy3"  # a pretraining set: never in the goals


def test_plan_runs_the_trained_models_per_budget_and_seed_and_tags_the_base_pieces():
    pieces = PB.plan(["gasoline"], list(PB.MODELS), [60, 300], [0, 1], "ab12cd34")
    got = [(p.model, p.budget_s, p.seed, p.base) for p in pieces]
    assert got[:3] == [
        ("seasonal_naive", 0, 0, ""), ("fracast", 0, 0, ""), ("tsdiff_zeroshot", 0, 0, "ab12cd34")
    ]  # fmt: skip
    assert [g for g in got if g[0] == "tsdiff_ft"] == [
        ("tsdiff_ft", b, s, "ab12cd34") for b in (60, 300) for s in (0, 1)
    ]
    assert [g for g in got if g[0] == "tsdiff"] == [
        ("tsdiff", b, s, "") for b in (60, 300) for s in (0, 1)
    ]  # scratch does not read the base: a new base does not rerun it
    assert len({p.filename for p in pieces}) == len(pieces) == 11
    assert pieces[2].filename == "gasoline__tsdiff_zeroshot__b0__s0__ab12cd34.json"


def _rec(s, model, budget, wql, seed=0, ms=10.0, status="ok"):
    rec = {"set": s, "model": model, "budget_s": budget, "seed": seed, "status": status,
           "n_windows": 20, "n_channels": 1}  # fmt: skip
    if status == "ok":
        rec |= {"wql": wql, "mase": 2 * wql, "crps": wql, "train_s": float(budget),
                "predict_ms_per_window": ms, "predict_ms_per_series_window": ms, "threads": 2}  # fmt: skip
    else:
        rec["error"] = "RuntimeError: boom"
    return rec


def _records():
    """Three held-out sets and one seen set; wQL chosen so that every goal has a known answer."""
    recs = []
    for s in (*HELD, SEEN):
        recs += [_rec(s, "seasonal_naive", 0, 1.0), _rec(s, "fracast", 0, 0.6)]
    # zero-shot / snaive: 0.5, 0.5, 0.8 -> geo mean (0.2)^(1/3) = 0.585; on the seen set 0.01
    for s, v in zip((*HELD, SEEN), (0.5, 0.5, 0.8, 0.01), strict=True):
        recs.append(_rec(s, "tsdiff_zeroshot", 0, v, ms=40.0 if s == "elecdaily" else 20.0))
    # fine-tuned vs scratch at 60 s: wins on 2 of 3 held-out sets; at 300 s on 3 of 3
    for s, ft60, sc60, ft300, sc300 in zip(
        HELD, (0.4, 0.4, 0.9), (0.5, 0.5, 0.7), (0.3, 0.3, 0.6), (0.45, 0.35, 0.65), strict=True
    ):
        recs += [_rec(s, "tsdiff_ft", 60, ft60), _rec(s, "tsdiff", 60, sc60)]
        recs += [_rec(s, "tsdiff_ft", 300, ft300), _rec(s, "tsdiff", 300, sc300)]
    recs += [_rec(SEEN, "tsdiff_ft", 60, 9.0), _rec(SEEN, "tsdiff", 60, 0.1)]  # never counted
    return recs


def _goal(goals, start):
    (g,) = [g for g in goals if g["goal"].startswith(start) and g["set"] == "ALL"]
    return g


def test_goals_are_computed_on_the_held_out_sets_only():
    rows = PB.set_rows(_records())
    assert {r["variant"] for r in rows} >= {"tsdiff_ft@60", "tsdiff@300", "tsdiff_zeroshot"}
    goals = PB.goal_rows(rows, [60, 300])
    zs = _goal(goals, "zero-shot wQL / seasonal naive")
    assert zs["measured"] == pytest.approx(0.2 ** (1 / 3)) and zs["n_sets"] == 3
    assert zs["met"] == "yes"  # 0.585 <= 0.8
    vs = _goal(goals, "zero-shot wQL / fracast")
    assert vs["measured"] == pytest.approx((0.5 * 0.5 * 0.8 / 0.6**3) ** (1 / 3))
    # better on the geometric mean (0.974 < 1) while worse on elecdaily (0.8 > 0.6)
    assert vs["met"] == "yes" and "2/3" in vs["detail"]
    ms = _goal(goals, "zero-shot predict ms")
    assert ms["measured"] == 40.0 and ms["met"] == "yes" and "[2]" in ms["detail"]
    at60 = _goal(goals, "fine-tuned beats scratch at 60 s")
    assert at60["measured"] == pytest.approx(2 / 3) and at60["met"] == "no"
    assert at60["n_sets"] == 3  # the seen set, where scratch wins, is not counted
    at300 = _goal(goals, "fine-tuned beats scratch at 300 s")
    assert at300["measured"] == 1.0 and at300["met"] == "yes"
    reach = _goal(goals, "fine-tuned at 60 s reaches scratch at 300 s")
    ratios = [0.4 / 0.45, 0.4 / 0.35, 0.9 / 0.65]
    assert reach["measured"] == pytest.approx(math.exp(np.mean(np.log(ratios))))
    assert reach["met"] == "no" and "1/3 (gasoline)" in reach["detail"]
    per_set = {g["set"]: g["met"] for g in goals if g["set"] != "ALL"}
    assert per_set == {"gasoline": "yes", "m1_yearly": "no", "elecdaily": "no"}


def test_a_failed_piece_is_a_failed_row_and_leaves_its_set_out_of_the_goal():
    recs = _records()
    recs = [r for r in recs if not (r["set"] == "elecdaily" and r["model"] == "tsdiff_ft")]
    recs += [_rec("elecdaily", "tsdiff_ft", b, None, status="failed") for b in (60, 300)]
    rows = PB.set_rows(recs)
    (bad,) = [r for r in rows if r["set"] == "elecdaily" and r["variant"] == "tsdiff_ft@60"]
    assert bad["status"] == "failed" and bad["error"] == "RuntimeError: boom"
    assert math.isnan(bad["wql"])
    goals = PB.goal_rows(rows, [60, 300])
    at60 = _goal(goals, "fine-tuned beats scratch at 60 s")
    assert at60["n_sets"] == 2 and at60["measured"] == 1.0
    # no rows at all for a goal: n/a, not a pass
    none = PB.goal_rows(PB.set_rows([_rec("gasoline", "seasonal_naive", 0, 1.0)]), [60])
    assert {g["met"] for g in none} == {"n/a"}


def test_merge_reads_the_planned_pieces_of_the_current_base(tmp_path, capsys):
    pieces = PB.plan(
        ["gasoline"], ["seasonal_naive", "tsdiff_zeroshot", "tsdiff"], [60], [0], "new"
    )
    for p, wql in zip(pieces, (1.0, 0.5), strict=False):  # scratch@60 not run yet
        write_piece(tmp_path, p, _rec(p.set, p.model, p.budget_s, wql))
    old = PB.Piece("gasoline", "tsdiff_zeroshot", 0, 0, "old")
    write_piece(tmp_path, old, _rec("gasoline", "tsdiff_zeroshot", 0, 0.1))
    assert len(read_pieces(tmp_path)) == 3
    out = tmp_path / "out"
    rows = PB.merge(pieces, tmp_path, out, [60], {"base": "tiny", "base_sha256": "new"})
    (zs,) = [r for r in rows if r["level"] == "set" and r["model"] == "tsdiff_zeroshot"]
    assert zs["wql"] == 0.5  # the old base's piece is not read
    assert (
        "not run yet: 1 planned piece(s): gasoline__tsdiff__b60__s0.json" in capsys.readouterr().out
    )
    columns, csv_rows = read_csv_rows(out / "pretrained_base.csv")
    assert {"level", "variant", "goal", "met", "base", "base_sha256"} <= set(columns)
    assert {r["level"] for r in csv_rows} == {"set", "aggregate", "goal"}


def test_a_missing_base_is_one_line():
    with pytest.raises(SystemExit, match=r"^--base: .*no tsdiff base there"):
        PB._base_meta("/nonexistent/base", ["tsdiff_zeroshot"])
    assert PB._base_meta("/nonexistent/base", ["tsdiff", "fracast"])["base"] == ""


TOY = Protocol("toy", "D", 3, 6, 2, ("y",), n_test_windows=2)


def _two_items(future_value=None):
    """Two daily items of 30 values alternating with period 2 (TOY's season); ``future_value``:
    the second-to-last value of each (inside its last test window)."""
    t = pd.date_range("2020-01-01", periods=30, freq="D")
    parts = []
    for k in range(2):
        y = 5.0 + k + np.tile([0.0, 2.0], 15)
        if future_value is not None:
            y[-2] = future_value
        parts.append(pd.DataFrame({"item_id": f"i{k}", "timestamp": t, "y": y}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def tiny_base(tmp_path):
    cfg = TSModelConfig(context_length=64, prediction_length=64, patch_size=16, n_bins=64,
                        d_model=32, n_layers=1, n_heads=2, time_features=[])  # fmt: skip
    # random weights: the runner's plumbing is tested, not the forecast
    return save_base(tmp_path / "tiny", Base(cfg, NumericDenoiser(cfg), {"name": "tiny"}))


def test_the_zero_shot_runner_forecasts_every_window_inside_the_training_domain(
    tiny_base, monkeypatch
):
    # only the scored future is negative: the domain is read before it
    df = _two_items(future_value=-50.0)
    monkeypatch.setenv(suite_models.BASE_ENV, str(tiny_base))
    fc = suite_models.run("tsdiff_zeroshot", df, TOY, seed=0)
    assert fc.samples.shape == (4, N_PATHS, 3, 1) and fc.fit_s == 0.0 and fc.predict_s > 0
    assert np.isfinite(fc.samples).all() and (fc.samples >= 0).all()


def test_the_speed_benchmark_scores_one_row_per_branch(tiny_base, monkeypatch):
    df = _two_items()
    monkeypatch.setenv(suite_models.BASE_ENV, str(tiny_base))
    rows = ZS.measure(df, TOY, [1, 4])
    assert [r["branch"] for r in rows] == [1, 4]
    assert all(r["n_windows"] == 4 and r["ms_per_series_window"] > 0 for r in rows)
    assert all(math.isfinite(r[k]) for r in rows for k in ("wql", "crps", "crps_sum"))
