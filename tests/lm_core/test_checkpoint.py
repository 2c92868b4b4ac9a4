"""lm_core checkpoints: roundtrip, atomic writes (full disk, concurrent and killed writers,
permissions), one-line errors for corrupt files, tokenizer/vocabulary mismatch."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lm_core import checkpoint
from lm_core.checkpoint import (
    CheckpointError,
    atomic_write_dir,
    atomic_write_file,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
)
from lm_core.cli import main as cli_main
from lm_core.config import ModelConfig
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.nn.transformer import Transformer


def model(vocab: int = 259, **kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=vocab, d_model=32, n_layers=1, n_heads=2, **kw))


@pytest.mark.parametrize("tie", [True, False])
def test_roundtrip(tmp_path, tie):
    m, tok = model(tie_embeddings=tie), ByteTokenizer()
    save_checkpoint(tmp_path / "ck", m, tok, objective="masked", extra={"step": 3})
    loaded, tok2, meta = load_checkpoint(tmp_path / "ck")
    assert meta["mask_id"] == tok.mask_id == 258 and meta["extra"] == {"step": 3}
    assert tok2.encode("héllo") == tok.encode("héllo")
    ids = torch.randint(0, 259, (1, 9))
    torch.testing.assert_close(loaded(ids), m(ids))
    assert not loaded.training


def test_failed_write_leaves_no_partial_dir_and_keeps_the_old_one(tmp_path):
    m = model()
    save_checkpoint(tmp_path / "ck", m, ByteTokenizer())
    before = (tmp_path / "ck" / "model.safetensors").read_bytes()

    class Broken(ByteTokenizer):
        def save(self, d):
            d.mkdir(parents=True, exist_ok=True)
            (d / "partial").write_text("x")
            raise OSError("disk full")

    with torch.no_grad():
        m.tok_emb.weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ck", m, Broken())
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "new", m, Broken())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temp or partial dirs
    assert (tmp_path / "ck" / "model.safetensors").read_bytes() == before


def test_corrupt_or_incomplete_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "ck", model(), ByteTokenizer())
    weights = tmp_path / "ck" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt"):
        load_checkpoint(tmp_path / "ck")
    save_checkpoint(tmp_path / "ck2", model(), ByteTokenizer())
    (tmp_path / "ck2" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is corrupt"):
        load_checkpoint(tmp_path / "ck2")
    (tmp_path / "ck2" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path / "ck2")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_weights_that_do_not_match_the_config(tmp_path):
    save_checkpoint(tmp_path / "ck", model(), ByteTokenizer())
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    meta["model"]["n_layers"] = 2
    (tmp_path / "ck" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "ck")


def test_vocabulary_mismatch(tmp_path):
    save_checkpoint(tmp_path / "ck", model(vocab=100), ByteTokenizer())  # 259 ids > 100
    with pytest.raises(CheckpointError, match="vocab_size"):
        load_checkpoint(tmp_path / "ck")


def test_atomic_write_file_renames_a_whole_readable_file_and_cleans_up_after_a_failure(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "a.txt", "one\n")
    assert path.read_text() == "one\n" and (path.stat().st_mode & 0o777) == 0o644

    def fails(tmp):
        tmp.write_text("half")
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        atomic_write_file(path, fails)
    assert path.read_text() == "one\n"  # the old file is untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]  # no temporary left


# --- writes that never lose work ------------------------------------------------------------


def _mode(p) -> int:
    return p.stat().st_mode & 0o777


def test_checkpoint_folders_are_0755_and_files_0644(tmp_path):
    ck = save_checkpoint(tmp_path / "ck", model(), ByteTokenizer())
    assert _mode(ck) == 0o755 and _mode(ck / "tokenizer") == 0o755
    files = [p for p in ck.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"model.safetensors", "config.json"}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o644 for p in files}


def test_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temporary(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "ck", model(), ByteTokenizer())
    before = {p.name: p.read_bytes() for p in (tmp_path / "ck").iterdir() if p.is_file()}

    def full_disk(state, filename):  # half a file, then the disk is full
        with open(filename, "wb") as f:
            f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path / "ck", model(vocab=300), ByteTokenizer())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    after = {p.name: p.read_bytes() for p in (tmp_path / "ck").iterdir() if p.is_file()}
    assert after == before
    load_checkpoint(tmp_path / "ck")  # still whole


def test_a_writer_that_lands_between_the_two_renames_leaves_nothing_behind(tmp_path, monkeypatch):
    """Another process renames its checkpoint into place after ours moved the old one aside:
    the rename of ours then meets a non-empty folder; it moves that one aside too and retries."""
    final = tmp_path / "ck"
    save_checkpoint(final, model(), ByteTokenizer())
    real_replace, raced = os.replace, []

    def racing_replace(src, dst):
        real_replace(src, dst)
        if Path(src) == final and not raced:  # ours moved the old folder aside ...
            raced.append(1)
            final.mkdir()  # ... and the other writer's folder arrives
            (final / "config.json").write_text("{}")

    monkeypatch.setattr(os, "replace", racing_replace)
    save_checkpoint(final, model(vocab=300), ByteTokenizer())
    assert raced and sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert load_checkpoint(final)[0].cfg.vocab_size == 300


def test_a_failed_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    final = tmp_path / "ck"
    save_checkpoint(final, model(), ByteTokenizer())
    real_replace = os.replace

    def refuse_new(src, dst):
        if Path(dst) == final and ".tmp-" in Path(src).name:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse_new)
    with pytest.raises(PermissionError):
        save_checkpoint(final, model(vocab=300), ByteTokenizer())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert load_checkpoint(final)[0].cfg.vocab_size == 259


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_a_killed_writer_are_cleaned_up_by_the_next_write(tmp_path):
    pid = _dead_pid()
    save_checkpoint(tmp_path / "ck", model(), ByteTokenizer())
    (tmp_path / f".ck.tmp-{pid}-abc").mkdir()  # killed while writing
    (tmp_path / f".a.txt.tmp-{pid}-xyz").write_text("half")
    live = tmp_path / f".ck.tmp-{os.getpid()}-mine"  # a live writer's: kept
    live.mkdir()
    save_checkpoint(tmp_path / "ck", model(), ByteTokenizer())
    atomic_write_text(tmp_path / "a.txt", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ck", "a.txt", live.name])
    # killed between moving the old folder aside and renaming the new one in: the old comes back
    os.replace(tmp_path / "ck", tmp_path / f".ck.old-{pid}-q")
    save_checkpoint(tmp_path / "other", model(), ByteTokenizer())  # another name: untouched
    assert (tmp_path / f".ck.old-{pid}-q").is_dir()
    atomic_write_dir(tmp_path / "ck", lambda d: (d / "new").write_text("n"))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ck.")] == [live.name]


# --- one-line errors for bad checkpoints ----------------------------------------------------


def _edit_config(ck, edit) -> None:
    meta = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps(edit(meta)))


def _set(key, value):
    def edit(meta):
        meta[key] = value
        return meta

    return edit


def _set_model(key, value):
    def edit(meta):
        meta["model"][key] = value
        return meta

    return edit


def _drop(key):
    def edit(meta):
        del meta[key]
        return meta

    return edit


CORRUPT = {
    "config is a list": (lambda ck: (ck / "config.json").write_text("[]"), "JSON object"),
    "config is a string": (lambda ck: (ck / "config.json").write_text('"x"'), "JSON object"),
    "config not UTF-8": (lambda ck: (ck / "config.json").write_bytes(b"\xff\xfe{"), "not JSON"),
    "no model field": (lambda ck: _edit_config(ck, _drop("model")), "'model'"),
    "model is a list": (lambda ck: _edit_config(ck, _set("model", [])), "'model'"),
    "unknown model key": (lambda ck: _edit_config(ck, _set_model("d_modle", 3)), "d_modle"),
    "no vocab_size": (lambda ck: _edit_config(ck, _set_model("vocab_size", None)), "vocab_size"),
    "bad d_model": (lambda ck: _edit_config(ck, _set_model("d_model", "32")), "model.d_model"),
    "mask_id past vocab": (lambda ck: _edit_config(ck, _set("mask_id", 259)), "mask_id"),
    "negative mask_id": (lambda ck: _edit_config(ck, _set("mask_id", -1)), "mask_id"),
    "mask_id a string": (lambda ck: _edit_config(ck, _set("mask_id", "258")), "mask_id"),
    "extra a list": (lambda ck: _edit_config(ck, _set("extra", [])), "'extra'"),
    "empty weights": (lambda ck: (ck / "model.safetensors").write_bytes(b""), "safetensors"),
    "garbage weights": (
        lambda ck: (ck / "model.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json}"),
        "safetensors",
    ),
    "truncated weights": (
        lambda ck: (ck / "model.safetensors").write_bytes(
            (ck / "model.safetensors").read_bytes()[:-7]
        ),
        "safetensors",
    ),
    "weights of another shape": (
        lambda ck: _edit_config(ck, _set_model("vocab_size", 300)),
        "shape",
    ),
    "tokenizer meta corrupt": (
        lambda ck: (ck / "tokenizer" / "tokenizer_meta.json").write_text("[1"),
        "tokenizer",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_every_corrupt_checkpoint_is_one_line_naming_it(tmp_path, capsys, case):
    spoil, needle = CORRUPT[case]
    ck = save_checkpoint(tmp_path / "ck", model(), ByteTokenizer())
    spoil(ck)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(ck)
    msg = str(e.value)
    assert "\n" not in msg and str(ck) in msg and needle in msg, msg
    assert e.value.__cause__ is None  # no library traceback chained underneath
    for command, args in (
        ("generate", ["--prompt", "hi", "--gen-length", "8"]),
        ("score", ["--prompt", "a", "--continuation", "b"]),
        ("choose", ["--question", "a", "--choices", "b", "c", "--samples", "2"]),
    ):
        assert cli_main([command, "--ckpt", str(ck), *args]) == 2, command
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"lm-core {command}: error:") and "\n" not in err, err
        assert needle in err, err
