"""The whole fit in max_time_s, and a final model trained on all of the history (tsdiff.fitting)."""

import time

import pytest
import torch

from tests.tsdiff.tiny import sine_frame
from tsdiff import Forecaster

SMALL = dict(
    prediction_length=6, context_length=24, freq="h", patch_size=4, n_bins=16, d_model=16,
    n_layers=1, n_heads=2, batch_size=8, progress=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return sine_frame(240)


@pytest.mark.parametrize("final", ["continue", "refit"])
def test_the_final_model_has_trained_on_the_held_out_horizons(data, final):
    """The first phase trains without the validation horizons (up to a quarter of the series);
    the final phase trains on the whole series, so no history is lost to calibration."""
    torch.set_num_threads(1)
    f = Forecaster(**SMALL, max_steps=10, final_phase=final).fit(data, target=["y"])
    first, last = f.history["phases"]
    assert first["phase"] == "first" and last["phase"] == final
    assert first["series_lengths"] == [240 - 7 * 6]  # 7 horizons: 42 of 240 steps (<= 1/4)
    assert last["series_lengths"] == [240]
    assert last["steps"] == (2 if final == "continue" else first["steps"])  # 20 % of 10; all
    assert "calibration" in f.history  # calibrated between the phases
    kept = Forecaster(**SMALL, max_steps=10, final_phase="none").fit(data, target=["y"])
    assert [p["series_lengths"] for p in kept.history["phases"]] == [[198]]
    assert kept.config.final_phase == "none"
    # the final phase changed the weights: the comparison above is not vacuous
    a, b = f.model.state_dict(), kept.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_a_fit_without_calibration_trains_once_on_everything(data):
    torch.set_num_threads(1)
    f = Forecaster(**SMALL, max_steps=4, calibrate=False).fit(data, target=["y"])
    assert [(p["phase"], p["series_lengths"]) for p in f.history["phases"]] == [("first", [240])]


def test_max_time_s_caps_the_whole_fit_calibration_included(data):
    """A budget far below what max_steps would take: training, calibration and the final phase
    all end within it (plus a few seconds of slack for a busy machine)."""
    torch.set_num_threads(1)
    budget = 12.0
    f = Forecaster(**{**SMALL, "d_model": 32}, max_steps=1_000_000, max_time_s=budget)
    t0 = time.monotonic()
    f.fit(data, target=["y", "x"])
    took = time.monotonic() - t0
    assert took < budget + 6.0, f.timings
    phases = [p["phase"] for p in f.history["phases"]]
    assert phases == ["first", "continue"] and 0 < f.history["steps"] < 1_000_000
    assert "calibration" in f.history and f.timings["calibration"] < budget
    assert set(f.timings) == {"data", "prepare", "first", "calibration", "final"}


def test_max_time_s_none_runs_max_steps(data):
    torch.set_num_threads(1)
    f = Forecaster(**SMALL, max_steps=5, max_time_s=None).fit(data, target=["y"])
    assert [p["steps"] for p in f.history["phases"]] == [5, 1]
