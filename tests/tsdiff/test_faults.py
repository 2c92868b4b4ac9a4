"""Writes that never lose work, and one-line errors (tsdiff side).

A full disk is simulated by a writer that raises ``OSError(ENOSPC)``, a read-only or forbidden
place by ``EROFS`` / ``EACCES`` (CI runs as root: ``chmod`` protects nothing there)."""

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

import tsdiff.store
import tsdiff.train
from lm_core.checkpoint import CheckpointError, OutputError, OutputLockedError, output_lock
from tests.tsdiff.tiny import sine_frame
from tsdiff import Forecaster
from tsdiff.cli import main as cli
from tsdiff.store import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(
    prediction_length=6, context_length=16, freq="h", patch_size=4, n_bins=16, d_model=16,
    n_layers=1, n_heads=2, batch_size=4, max_steps=8, progress=False, validation_per_series=2,
    dropout=0.1,
)  # fmt: skip


class Stop(L.Callback):
    """Ends training with an error before step ``at`` (a killed run, as far as files go)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("killed")


def stopping_at(monkeypatch, at: int) -> None:
    """Make the next fit's Trainer stop before step ``at``."""
    build = tsdiff.train.build_trainer

    def build_and_stop(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.callbacks.append(Stop(at))
        return trainer

    monkeypatch.setattr(tsdiff.train, "build_trainer", build_and_stop)


def state(f: Forecaster) -> dict:
    return {k: v.detach().clone() for k, v in f.model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def data():
    return sine_frame(200)


@pytest.fixture(scope="module")
def fitted(data):
    return Forecaster(**{**TINY, "max_steps": 2, "calibrate": False}).fit(data, target=["y"])


# ------------------------------------------------------------------------------ exact resume
def test_a_killed_fit_resumes_to_the_weights_of_an_uninterrupted_one(data, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    whole = Forecaster(**TINY).fit(data, target=["y"], checkpoint_dir=tmp_path / "a",
                                   checkpoint_every=2)  # fmt: skip
    stopping_at(monkeypatch, 5)
    with pytest.raises(RuntimeError, match="killed"):
        Forecaster(**TINY).fit(data, target=["y"], checkpoint_dir=tmp_path / "b",
                               checkpoint_every=2)  # fmt: skip
    monkeypatch.undo()
    saved = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4  # the checkpoint of step 4; step 5 was lost with the kill
    resumed = Forecaster(**TINY).fit(
        data, target=["y"], checkpoint_dir=tmp_path / "b", resume="auto", checkpoint_every=2
    )
    assert resumed.history["steps"] == whole.history["steps"] == 8
    assert_same_weights(state(resumed), state(whole))
    assert resumed.temperature == whole.temperature  # calibration is deterministic too
    assert resumed.history == whole.history
    # and a run stopped at another step differs from a fresh one: the comparison can fail
    other = Forecaster(**{**TINY, "seed": 1}).fit(data, target=["y"])
    assert any(not torch.equal(a, b) for a, b in zip(state(other).values(),
                                                     state(whole).values(), strict=True))  # fmt: skip


def test_resume_auto_with_nothing_to_resume_starts_fresh(data, tmp_path):
    torch.set_num_threads(1)
    cfg = {**TINY, "max_steps": 3, "calibrate": False}
    a = Forecaster(**cfg).fit(data, target=["y"], checkpoint_dir=tmp_path / "w", resume="auto")
    b = Forecaster(**cfg).fit(data, target=["y"])  # no checkpoints at all: same training
    assert a.history["steps"] == 3
    assert_same_weights(state(a), state(b))
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint file"):
        Forecaster(**cfg).fit(data, target=["y"], resume=tmp_path / "nothing.ckpt")
