"""Faults and bad input: full disks, read-only and locked output folders, truncated and unsafe
Lightning checkpoints, corrupt LLaDA-format folders. Each ends in one line naming the file (or
folder) and what is wrong, never in a library traceback, and no previous work is lost.

Read-only folders and full disks are simulated by monkeypatching the os functions to raise the
errors a real one gives (EROFS, ENOSPC): chmod does not stop root, and CI runs as root.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file, save_file

from lm_core import ModelConfig, Transformer
from lm_core.checkpoint import (
    LOCK_NAME,
    CheckpointError,
    OutputError,
    OutputLockedError,
    atomic_write_dir,
    ensure_writable,
    output_lock,
    save_checkpoint,
)
from lm_core.cli import main as cli_main
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.text.llada import export_llada, load_any, load_llada
from lm_core.train.checkpoint_io import AtomicCheckpointIO
from lm_core.train.config import parse
from lm_core.train.run import run

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "lm" / "tiny-masked.yaml")


def tiny(out_dir, *extra: str):
    return parse(
        ["--config", TINY, "--out_dir", str(out_dir), "--trainer.progress_bar", "false", *extra]
    )


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lm-core {command}: error:") and "\n" not in err, err
    assert "Traceback" not in err
    return err


def refuse_writes_in(monkeypatch, folder: Path, code: int = errno.EROFS) -> None:
    """Make creating or writing any file under ``folder`` fail with ``code`` (what a read-only
    filesystem, or one without permission, answers)."""
    real_open, inside = os.open, str(folder.resolve()) + os.sep

    def open_(path, flags, *args, **kwargs):
        if os.path.abspath(path).startswith(inside) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(code, os.strerror(code), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)


# --- output folders ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_ensure_writable_names_the_folder_and_the_os_reason(tmp_path, monkeypatch, code):
    out = tmp_path / "out"
    assert ensure_writable(out) == out and out.is_dir() and not list(out.iterdir())
    refuse_writes_in(monkeypatch, out, code)
    with pytest.raises(OutputError) as e:
        ensure_writable(out)
    assert str(e.value) == f"{out}: the output folder is not writable ({os.strerror(code)})"
    assert not list(out.iterdir())


def test_ensure_writable_refuses_a_file_and_an_uncreatable_folder(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="it is a file"):
        ensure_writable(tmp_path / "f")

    def no_mkdir(path, *args, **kwargs):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(os, "mkdir", no_mkdir)
    with pytest.raises(OutputError, match=r"new: cannot create the output folder \(Permission"):
        ensure_writable(tmp_path / "new")


def test_output_lock_admits_one_writer_and_is_removed_after(tmp_path):
    with output_lock(tmp_path / "out") as out:
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(OutputLockedError) as e:
            with output_lock(out):
                pass
        assert str(e.value).startswith(f"{out}: another process (pid {os.getpid()}) is writing")
    assert not (out / LOCK_NAME).exists()
    with output_lock(out):  # free again
        pass


LOCK_HOLDER = textwrap.dedent(
    """
    import sys
    from lm_core.checkpoint import output_lock
    with output_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


def test_a_live_process_holding_the_lock_stops_a_second_writer(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=f"another process \\(pid {holder.pid}\\)"):
            with output_lock(tmp_path):
                pass
    finally:
        holder.communicate("\n", timeout=60)
    with output_lock(tmp_path):  # released at its exit
        pass


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid}\n")  # left by a kill -9
    with output_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())


# --- lm-core fit and generate on bad output folders -------------------------------------------


def test_fit_into_a_read_only_folder_fails_before_training(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    out.mkdir()
    refuse_writes_in(monkeypatch, out)
    with pytest.raises(OutputError, match="Read-only file system"):
        run(tiny(out))
    assert not list(out.iterdir())  # nothing trained, nothing written
    assert cli_main(["fit", "--config", TINY, "--out_dir", str(out)]) == 2
    err = one_line_error(capsys, "fit")
    assert f"{out}: the output folder is not writable (Read-only file system)" in err


def test_a_second_fit_into_a_folder_being_written_fails_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    with output_lock(out):  # as a running lm-core fit holds it
        with pytest.raises(OutputLockedError):
            run(tiny(out))
        assert cli_main(["fit", "--config", TINY, "--out_dir", str(out)]) == 2
        assert "is writing this output folder" in one_line_error(capsys, "fit")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # no step was trained


def test_generate_out_is_checked_before_sampling(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    net = Transformer(ModelConfig(vocab_size=259, d_model=32, n_layers=1, n_heads=2))
    ck = save_checkpoint(tmp_path / "ck", net, ByteTokenizer())
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "ab", "response": "ba"}) + "\n")
    (tmp_path / "answers").mkdir()
    refuse_writes_in(monkeypatch, tmp_path / "answers")
    sampled = []
    monkeypatch.setattr("lm_core.commands.generate._sample", lambda *a, **k: sampled.append(1) / 0)
    argv = ["generate", "--ckpt", str(ck), "--prompts", str(prompts), "--gen-length", "8"]
    assert cli_main([*argv, "--out", str(tmp_path / "answers" / "a.jsonl")]) == 2
    assert "not writable (Read-only file system)" in one_line_error(capsys, "generate")
    assert not sampled


# --- Lightning checkpoints: atomic, two kept, resume falls back -------------------------------


def test_checkpoint_io_keeps_the_last_two_whole_and_readable(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last-prev.ckpt", "last.ckpt"]
    assert io.load_checkpoint(path)["step"] == 2
    assert io.load_checkpoint(tmp_path / "last-prev.ckpt")["step"] == 1
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o644}
    io.remove_checkpoint(path)
    assert not list(tmp_path.iterdir())


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    before = path.read_bytes()

    def full_disk(obj, f, *args, **kwargs):  # half a checkpoint, then no space
        f.write(before[: len(before) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OutputError) as e:
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert str(e.value) == (
        f"{path}: checkpoint not written (No space left on device); the previous one is kept"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary left
    assert path.read_bytes() == before


def test_an_unreadable_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    io.save_checkpoint({"step": torch.tensor(2)}, path)
    path.write_bytes(path.read_bytes()[:300])  # a truncated copy, as a full disk leaves it
    assert io.load_checkpoint(path, weights_only=True)["step"] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"resume: {path}: unreadable checkpoint (PytorchStreamReader failed reading zip archive: "
        f"failed finding central directory); falling back to the previous checkpoint "
        f"{tmp_path / 'last-prev.ckpt'}"
    ]
    # a truncated last.ckpt is not kept as the previous one: the next save replaces it
    io.save_checkpoint({"step": torch.tensor(3)}, path)
    assert io.load_checkpoint(tmp_path / "last-prev.ckpt")["step"] == 1
    path.unlink()  # killed between the two renames of a save
    assert io.load_checkpoint(path)["step"] == 1
    (tmp_path / "last-prev.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"last-prev.ckpt: unreadable checkpoint \(empty"):
        io.load_checkpoint(path)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker file
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_with_code_in_it_is_refused_in_one_line(tmp_path, capsys):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError) as e:
        AtomicCheckpointIO().load_checkpoint(evil, weights_only=True)
    msg = str(e.value)
    assert msg.startswith(f"{evil}: refused: it holds objects other than tensors")
    assert "\n" not in msg and "weights_only" not in msg and not marker.exists()
    assert cli_main(["fit", "--config", TINY, "--out_dir", str(tmp_path / "run"),
                     "--trainer.progress_bar", "false", "--resume", str(evil)]) == 2  # fmt: skip
    err = one_line_error(capsys, "fit")
    assert "refused" in err and "weights_only" not in err and not marker.exists()


class _Kill(L.Callback):
    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == 12:
            raise RuntimeError("simulated crash")


def test_fit_resumes_from_the_previous_checkpoint_when_last_is_truncated(tmp_path, capsys):
    args = ("--trainer.max_steps", "20", "--trainer.ckpt_every_n_steps", "5")
    _, full = run(tiny(tmp_path / "full", *args))
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny(out, *args), callbacks=[_Kill()])
    assert torch.load(out / "last-prev.ckpt", weights_only=True)["global_step"] == 5
    last = out / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])
    assert not (out / LOCK_NAME).exists()  # the crashed run let go of the folder
    capsys.readouterr()
    trainer, resumed = run(tiny(out, *args))  # resume: auto
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("resume:")]
    assert err == [
        f"resume: {last}: unreadable checkpoint (PytorchStreamReader failed reading zip archive: "
        f"failed finding central directory); falling back to the previous checkpoint "
        f"{out / 'last-prev.ckpt'}"
    ]
    assert trainer.global_step == 20  # steps 6..20 trained again, from step 5
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


# --- LLaDA-format folders ---------------------------------------------------------------------


def _llada(d: Path) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=272, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                      ffn_hidden=48, max_seq_len=64, tie_embeddings=False)  # fmt: skip
    return export_llada(Transformer(cfg), d, mask_id=258, eos_id=256, pad_id=257, vocab_size=259)


def _config(d: Path, **changes) -> None:
    raw = json.loads((d / "config.json").read_text())
    for k, v in changes.items():
        if v is ...:
            del raw[k]
        else:
            raw[k] = v
    (d / "config.json").write_text(json.dumps(raw))


def _weights(d: Path, edit) -> None:
    state = load_file(str(d / "model.safetensors"))
    edit(state)
    save_file(state, str(d / "model.safetensors"))


def _shards(d: Path, names: dict) -> None:
    """Split the weights into two shards; ``names`` renames shard files in the index."""
    state = load_file(str(d / "model.safetensors"))
    (d / "model.safetensors").unlink()
    keys = sorted(state)
    files = {"a.safetensors": keys[:5], "b.safetensors": keys[5:]}
    for f, ks in files.items():
        save_file({k: state[k] for k in ks}, str(d / f))
    index = {"weight_map": {k: names.get(f, f) for f, ks in files.items() for k in ks}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))


LLADA_CASES = {
    "no config.json": (lambda d: (d / "config.json").unlink(), "config.json"),
    "config.json not JSON": (lambda d: (d / "config.json").write_text("{oops"), "not JSON"),
    "config.json a list": (lambda d: (d / "config.json").write_text("[]"), "JSON object"),
    "missing n_layers": (lambda d: _config(d, n_layers=...), "n_layers"),
    "d_model a string": (lambda d: _config(d, d_model="32"), "d_model"),
    "n_heads zero": (lambda d: _config(d, n_heads=0), "n_heads"),
    "rope_theta a list": (lambda d: _config(d, rope_theta=[1]), "rope_theta"),
    "unsupported alibi": (lambda d: _config(d, alibi=True), "alibi"),
    "no mask_token_id": (lambda d: _config(d, mask_token_id=...), "mask_token_id"),
    "mask id past the vocab": (lambda d: _config(d, mask_token_id=272), "mask id"),
    "eos id past the vocab": (lambda d: _config(d, eos_token_id=10**6), "eos_token_id"),
    "truncated weights": (
        lambda d: (d / "model.safetensors").write_bytes(
            (d / "model.safetensors").read_bytes()[:-100]
        ),
        "corrupt safetensors",
    ),
    "empty weights": (lambda d: (d / "model.safetensors").write_bytes(b""), "corrupt safetensors"),
    "no weights": (lambda d: (d / "model.safetensors").unlink(), "weight file missing"),
    "unexpected tensor": (
        lambda d: _weights(d, lambda s: s.update({"model.transformer.x.weight": torch.ones(2)})),
        "unexpected tensor",
    ),
    "tensor of the wrong shape": (
        lambda d: _weights(
            d, lambda s: s.update({"model.transformer.ln_f.weight": torch.ones(33)})
        ),
        "has shape (33,)",
    ),
    "missing tensor": (
        lambda d: _weights(d, lambda s: s.pop("model.transformer.blocks.1.up_proj.weight")),
        "weights missing",
    ),
    "index not JSON": (
        lambda d: (_shards(d, {}), (d / "model.safetensors.index.json").write_text("{")),
        "not JSON",
    ),
    "index without weight_map": (
        lambda d: (_shards(d, {}), (d / "model.safetensors.index.json").write_text("{}")),
        "weight_map",
    ),
    "shard missing": (lambda d: _shards(d, {"b.safetensors": "c.safetensors"}), "missing"),
    "shard name a number": (lambda d: _shards(d, {"b.safetensors": 7}), "expected a file name"),
    "corrupt tokenizer.json": (lambda d: (d / "tokenizer.json").write_text("{"), "tokenizer"),
}


@pytest.mark.parametrize("case", sorted(LLADA_CASES))
def test_every_corrupt_llada_folder_is_one_line_naming_it(tmp_path, capsys, case):
    spoil, needle = LLADA_CASES[case]
    d = _llada(tmp_path / "llada")
    (d / "tokenizer.json").write_text("{}")  # not reached unless the case is about it
    spoil(d)
    with pytest.raises(CheckpointError) as e:
        load_any(d)
    msg = str(e.value)
    assert "\n" not in msg and str(d) in msg and needle in msg, msg
    assert e.value.__cause__ is None
    assert cli_main(["generate", "--ckpt", str(d), "--prompt", "hi"]) == 2
    assert needle in one_line_error(capsys, "generate")


def test_shard_paths_that_leave_the_folder_are_refused(tmp_path):
    d = _llada(tmp_path / "llada")
    for name in ("../outside.safetensors", str(tmp_path / "outside.safetensors"), "x/../../o"):
        _llada(d)
        _shards(d, {"b.safetensors": name})
        os.replace(d / "b.safetensors", tmp_path / "outside.safetensors")
        with pytest.raises(CheckpointError, match="refused path") as e:
            load_llada(d)
        assert str(d / "model.safetensors.index.json") in str(e.value)
        (tmp_path / "outside.safetensors").unlink()
        (d / "model.safetensors.index.json").unlink()
        (d / "a.safetensors").unlink()
    _llada(d)
    _shards(d, {"b.safetensors": "sub/b.safetensors"})  # a sub-folder is inside: fine
    (d / "sub").mkdir()
    os.replace(d / "b.safetensors", d / "sub" / "b.safetensors")
    assert load_llada(d)[1]["mask_id"] == 258


def test_a_lightning_ckpt_given_as_a_checkpoint_folder_is_one_line(tmp_path, capsys):
    f = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}}, f)
    assert cli_main(["generate", "--ckpt", str(f), "--prompt", "hi"]) == 2
    err = one_line_error(capsys, "generate")
    assert f"{f}: expected a checkpoint folder" in err and "resume" in err


def test_a_folder_replaced_whole_under_its_own_lock_stays_locked(tmp_path):
    """Forecaster.save-style writers replace the whole folder (atomic_write_dir): the lock file
    moves into the new folder, still held, and goes away when the lock is released."""
    out = tmp_path / "model"
    with output_lock(out):
        atomic_write_dir(out, lambda d: (d / "weights").write_text("w"))
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "weights"]
        with pytest.raises(OutputLockedError):
            with output_lock(out):
                pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [p.name for p in out.iterdir()] == ["weights"]
