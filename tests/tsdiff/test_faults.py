"""Writes that never lose work, and one-line errors (tsdiff side).

A full disk is simulated by a writer that raises ``OSError(ENOSPC)``, a read-only or forbidden
place by ``EROFS`` / ``EACCES`` (CI runs as root: ``chmod`` protects nothing there)."""

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath

import lightning as L
import pandas as pd
import pytest
import torch

import tsdiff.fitting
import tsdiff.forecaster
import tsdiff.store
import tsdiff.train
from lm_core.checkpoint import CheckpointError, OutputError, OutputLockedError, output_lock
from tests.tsdiff.tiny import sine_frame
from tsdiff import Forecaster
from tsdiff.cli import main as cli
from tsdiff.commands.io import write_frame
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
    # another seed trains other weights: the comparison above can fail
    other = state(Forecaster(**{**TINY, "seed": 1}).fit(data, target=["y"]))
    assert any(not torch.equal(other[k], v) for k, v in state(whole).items())


def test_resume_auto_with_nothing_to_resume_starts_fresh(data, tmp_path):
    torch.set_num_threads(1)
    cfg = {**TINY, "max_steps": 3, "calibrate": False}
    a = Forecaster(**cfg).fit(data, target=["y"], checkpoint_dir=tmp_path / "w", resume="auto")
    b = Forecaster(**cfg).fit(data, target=["y"])  # no checkpoints at all: same training
    assert a.history["steps"] == 3
    assert_same_weights(state(a), state(b))
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint file"):
        Forecaster(**cfg).fit(data, target=["y"], resume=tmp_path / "nothing.ckpt")


# ------------------------------------------------------------------------------ one writer
def leftovers(folder: Path) -> list[str]:
    """Temporary or moved-aside folders and files of writers, and lock files."""
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name
                  or p.name == ".output.lock")  # fmt: skip


def test_a_save_into_a_folder_another_writer_holds_fails_at_once(fitted, tmp_path):
    out = tmp_path / "ck"
    with output_lock(out):
        with pytest.raises(OutputLockedError, match="another process .*is writing"):
            fitted.save(out)
        assert not (out / "config.json").exists()  # nothing was written meanwhile
    fitted.save(out)
    assert load_checkpoint(out).config == fitted.config
    assert leftovers(tmp_path) == [] and leftovers(out) == []


def test_concurrent_saves_in_threads_keep_one_whole_model(fitted, tmp_path):
    out, errors, barrier = tmp_path / "ck", [], threading.Barrier(6)

    def save():
        barrier.wait()
        for _ in range(5):
            try:
                fitted.save(out)
            except OutputLockedError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=save) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all("\n" not in e for e in errors)
    assert load_checkpoint(out).config == fitted.config
    assert leftovers(tmp_path) == [] and leftovers(out) == []


def test_a_save_from_another_process_fails_while_this_one_holds_the_folder(fitted, tmp_path):
    out = tmp_path / "ck"
    fitted.save(out)
    code = (
        "import sys; from tsdiff import Forecaster; f = Forecaster.load(sys.argv[1]); "
        "f.temperature = 9.0; f.save(sys.argv[1])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with output_lock(out):
        r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                           text=True, env=env, timeout=300)  # fmt: skip
    assert r.returncode != 0 and "OutputLockedError" in r.stderr
    assert f"{out}: another process (pid {os.getpid()}) is writing" in r.stderr
    assert load_checkpoint(out).temperature == fitted.temperature  # the first model stays


# ------------------------------------------------------------------------------ full / read-only
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_save_that_cannot_write_keeps_the_older_model_and_no_temporaries(
    fitted, tmp_path, monkeypatch, code
):
    out = tmp_path / "ck"
    fitted.save(out)
    before = (out / "model.safetensors").read_bytes()

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tsdiff.store, "save_file", refuse)
    with pytest.raises(OutputError, match=f"{out}: checkpoint not written \\({os.strerror(code)}"):
        fitted.save(out)
    assert (out / "model.safetensors").read_bytes() == before
    assert leftovers(tmp_path) == [] and leftovers(out) == []


def test_a_first_save_that_cannot_write_leaves_no_folder(fitted, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tsdiff.store, "save_file", full)
    with pytest.raises(OutputError, match="No space left on device"):
        fitted.save(tmp_path / "runs" / "ck")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_checkpoint_files_are_one_line(fitted, tmp_path, monkeypatch):
    out = fitted.save(tmp_path / "ck")

    def forbidden(*args, **kwargs):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tsdiff.store, "load_file", forbidden)
    with pytest.raises(CheckpointError, match=r"model.safetensors: cannot be read \(Permission"):
        Forecaster.load(out)
    monkeypatch.setattr(Path, "read_text", forbidden)
    with pytest.raises(CheckpointError, match=rf"{out}: config.json cannot be read \(Permission"):
        Forecaster.load(out)


def test_saved_folders_are_0755_and_files_0644(fitted, tmp_path):
    out = fitted.save(tmp_path / "ck")
    assert out.stat().st_mode & 0o777 == 0o755
    for p in out.iterdir():
        assert p.stat().st_mode & 0o777 == 0o644, p


# ------------------------------------------------------------------------------ corrupt checkpoints
def corrupt_cases(good: Path) -> dict:
    cfg = json.loads((good / "config.json").read_text())
    weights = (good / "model.safetensors").read_bytes()
    no_model = {k: v for k, v in cfg.items() if k != "model"}
    bad_shape = {**cfg, "model": {**cfg["model"], "d_model": 32}}
    bad_field = {**cfg, "forecaster": {**cfg["forecaster"], "warp": 1}}
    return {  # name -> (config.json text, weights bytes, what the one line must say)
        "config holds []": ("[]", weights, "config.json is corrupt \\(expected a JSON object"),
        "config not JSON": ("{nope", weights, "config.json is corrupt \\(not JSON"),
        "config truncated": (json.dumps(cfg)[:40], weights, "config.json is corrupt"),
        "model field missing": (json.dumps(no_model), weights, "field 'model' missing"),
        "unknown field": (json.dumps(bad_field), weights, "corrupt tsdiff config"),
        "weights truncated": (json.dumps(cfg), weights[: len(weights) // 2], "model.safetensors"),
        "weights empty": (json.dumps(cfg), b"", "model.safetensors"),
        "weights not safetensors": (json.dumps(cfg), b"\x80\x04junk" * 40, "model.safetensors"),
        "shapes do not fit": (json.dumps(bad_shape), weights, "has shape"),
        "wrong format": (json.dumps({**cfg, "format": "lm_core"}), weights, "format 'lm_core'"),
    }


def test_every_corrupt_checkpoint_is_one_line_naming_the_file(fitted, tmp_path, capsys):
    good = fitted.save(tmp_path / "good")
    for i, (name, (text, weights, says)) in enumerate(corrupt_cases(good).items()):
        bad = tmp_path / f"bad{i}"
        bad.mkdir()
        (bad / "config.json").write_text(text)
        (bad / "model.safetensors").write_bytes(weights)
        with pytest.raises(CheckpointError, match=says) as e:
            Forecaster.load(bad)
        msg = str(e.value)
        assert "\n" not in msg and str(bad) in msg, name
        assert "weights_only" not in msg, name
        argv = ["forecast", "--ckpt", str(bad), "--data", "x.csv", "--output"]
        status = cli([*argv, str(tmp_path / "o.csv")])
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and str(bad) in err, (name, err)
        assert err.startswith("tsdiff forecast: error: "), name


def test_a_missing_checkpoint_is_still_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a tsdiff checkpoint"):
        Forecaster.load(tmp_path)
    with pytest.raises(CheckpointError, match="not a tsdiff checkpoint"):
        Forecaster.load(tmp_path)


# ------------------------------------------------------------------------------ the commands
TINY_YAML = str(ROOT / "configs" / "ts" / "tiny.yaml")


@pytest.fixture(scope="module")
def csv(tmp_path_factory, data) -> Path:
    path = tmp_path_factory.mktemp("faults") / "data.csv"
    data.to_csv(path, index=False)
    return path


def fit_argv(csv: Path, out: Path, *more: str) -> list[str]:
    return ["fit", "--config", TINY_YAML, "--data", str(csv), "--target", "y", "--out", str(out),
            "--max_steps", "6", "--checkpoint-every", "2", *more]  # fmt: skip


def refuse_writes_in(monkeypatch, folder: Path, code: int) -> None:
    """Every temporary file created in ``folder`` (or below) fails with OSError(code)."""
    make = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
            raise OSError(code, os.strerror(code), str(dir))
        return make(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def no_training(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(tsdiff.fitting, "fit_module", fail)


def one_error_line(capsys, cmd: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"tsdiff {cmd}: error: "), err
    assert "Traceback" not in err and "weights_only" not in err
    return lines[0]


def test_fit_resume_auto_continues_a_killed_run_to_the_same_model(csv, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    assert cli(fit_argv(csv, tmp_path / "whole")) == 0
    stopping_at(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="killed"):
        cli(fit_argv(csv, tmp_path / "out"))
    monkeypatch.undo()
    assert (tmp_path / "out" / ".train" / "last.ckpt").is_file()  # step 2's work is kept
    assert not (tmp_path / "out" / ".output.lock").exists()
    assert cli(fit_argv(csv, tmp_path / "out", "--resume", "auto")) == 0
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "out")
    assert_same_weights(a.model.state_dict(), b.model.state_dict())
    assert (a.temperature, a.history) == (b.temperature, b.history)
    # the finished folder: the model and fit.yaml, no work folder, lock or temporaries
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["config.json", "fit.yaml", "model.safetensors"]
    assert leftovers(tmp_path) == []


def test_fit_into_a_folder_another_fit_writes_fails_before_training(csv, tmp_path, capsys,
                                                                     monkeypatch):  # fmt: skip
    out = tmp_path / "out"
    no_training(monkeypatch)
    with output_lock(out):
        assert cli(fit_argv(csv, out)) == 2
    assert "is writing this output folder" in one_error_line(capsys, "fit")


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_fit_checks_that_out_is_writable_before_training(csv, tmp_path, capsys, monkeypatch, code):
    out = tmp_path / "runs" / "out"
    no_training(monkeypatch)
    refuse_writes_in(monkeypatch, out, code)
    assert cli(fit_argv(csv, out)) == 2
    line = one_error_line(capsys, "fit")
    assert f"{out}: the output folder is not writable ({os.strerror(code)})" in line
    assert list(tmp_path.iterdir()) == []  # the folders the failed run created are gone again


def test_fit_on_a_full_disk_stops_at_the_checkpoint_with_one_line(
    csv, tmp_path, capsys, monkeypatch
):
    """The disk fills after the checkpoint of step 2: the run stops at step 4's with one line,
    step 2's checkpoint is kept whole, and the run continues from it once there is room."""
    out, calls, save = tmp_path / "out", [], torch.save

    def fills_up(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(*args, **kwargs)

    monkeypatch.setattr(tsdiff.train.AtomicCheckpointIO, "save_checkpoint", _failing_save(fills_up))
    assert cli(fit_argv(csv, out)) == 2
    line = one_error_line(capsys, "fit")
    assert "last.ckpt: checkpoint not written (No space left on device)" in line
    assert leftovers(out / ".train") == [] and leftovers(out) == []
    assert torch.load(out / ".train" / "last.ckpt", weights_only=True)["global_step"] == 2
    monkeypatch.undo()
    assert cli(fit_argv(csv, out, "--resume", "auto")) == 0
    assert load_checkpoint(out).history["steps"] == 6


def _failing_save(torch_save):
    """AtomicCheckpointIO.save_checkpoint with ``torch.save`` replaced by ``torch_save``."""
    real = tsdiff.train.AtomicCheckpointIO.save_checkpoint

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        keep = torch.save
        torch.save = torch_save
        try:
            return real(self, checkpoint, path, storage_options)
        finally:
            torch.save = keep

    return save_checkpoint


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("cmd", ["forecast", "evaluate-json", "evaluate-plots", "rollout"])
def test_commands_check_their_outputs_before_loading_or_sampling(tmp_path, capsys, monkeypatch,
                                                                 cmd, code):  # fmt: skip
    dest = tmp_path / "ro"
    refuse_writes_in(monkeypatch, dest, code)
    ck = str(tmp_path / "no-such-checkpoint")  # loading it would fail: the output check is first
    argv = {
        "forecast": ["forecast", "--ckpt", ck, "--data", "x.csv", "--output", str(dest / "f.csv")],
        "evaluate-json": ["evaluate", "--ckpt", ck, "--data", "x.csv", "--json",
                          str(dest / "m.json")],
        "evaluate-plots": ["evaluate", "--ckpt", ck, "--data", "x.csv", "--plots", str(dest)],
        "rollout": ["rollout", "--ckpt", ck, "--history", "h.csv", "--plans", "p.csv",
                    "--horizon", "4", "--output", str(dest / "r.csv")],
    }[cmd]  # fmt: skip
    assert cli(argv) == 2
    line = one_error_line(capsys, argv[0])
    assert f"{dest}: the output folder is not writable ({os.strerror(code)})" in line


def test_a_frame_write_on_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path, monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(OutputError, match="f.csv: not written \\(No space left on device\\)"):
        write_frame(pd.DataFrame({"a": [1]}), tmp_path / "f.csv")
    assert list(tmp_path.iterdir()) == []


def test_fit_resumes_after_kill_9(csv, tmp_path):
    """A real kill -9 of ``tsdiff fit`` (in whatever state it is, a checkpoint write included):
    ``--resume auto`` takes the lock over and ends with the uninterrupted run's model."""
    torch.set_num_threads(1)
    out, steps = tmp_path / "out", "120"
    argv = [sys.executable, "-m", "tsdiff.cli", *fit_argv(csv, out, "--max_steps", steps)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (out / ".train" / "last.ckpt").is_file() and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        time.sleep(0.2)  # somewhere in the next steps, maybe in a checkpoint write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    step = torch.load(out / ".train" / "last.ckpt", weights_only=True)["global_step"]
    assert 2 <= step < 120
    assert cli(fit_argv(csv, out, "--max_steps", steps, "--resume", "auto")) == 0
    assert cli(fit_argv(csv, tmp_path / "whole", "--max_steps", steps)) == 0
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(out)
    assert_same_weights(a.model.state_dict(), b.model.state_dict())
    assert a.temperature == b.temperature
    assert leftovers(tmp_path) == [] and leftovers(out) == []


def test_fit_resume_from_an_unsafe_or_truncated_checkpoint_is_one_line(csv, tmp_path, capsys):
    evil, cut = tmp_path / "evil.ckpt", tmp_path / "cut.ckpt"
    torch.save({"state_dict": {}, "payload": PurePosixPath("/etc/passwd")}, evil)
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, cut)
    cut.write_bytes(cut.read_bytes()[:500])
    for ckpt, says in ((evil, "refused"), (cut, "unreadable checkpoint")):
        assert cli(fit_argv(csv, tmp_path / "out", "--resume", str(ckpt))) == 2
        line = one_error_line(capsys, "fit")
        assert f"{ckpt}: {says}" in line
