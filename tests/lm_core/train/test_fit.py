"""``lm-core fit`` end to end on tiny-masked: learning, outputs, exact resume, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from lm_core.checkpoint import load_checkpoint
from lm_core.cli import main as cli_main
from lm_core.config import ConfigError
from lm_core.train.config import parse
from lm_core.train.run import run

TINY = str(Path(__file__).resolve().parents[3] / "configs" / "lm" / "tiny-masked.yaml")


def tiny(tmp_path, *extra: str):
    return parse(
        ["--config", TINY, "--out_dir", str(tmp_path), "--trainer.progress_bar", "false", *extra]
    )


@pytest.mark.learning
def test_tiny_masked_learns_and_writes_checkpoints(tmp_path):
    trainer, module = run(tiny(tmp_path))
    assert trainer.global_step == 30
    val = float(trainer.callback_metrics["val/loss"])
    # a uniform guess over 259 byte ids costs ln(259) = 5.56 nats per token
    assert val < math.log(259) - 1.5, val
    assert float(trainer.callback_metrics["val/ppl_bound"]) == pytest.approx(
        math.exp(val), rel=1e-4
    )
    for name in ("final", "best", "latest"):
        model, tok, meta = load_checkpoint(tmp_path / name)
        assert tok.vocab_size == model.cfg.vocab_size == 259
        assert meta["mask_id"] == tok.mask_id and meta["objective"] == "masked"
    assert (tmp_path / "last.ckpt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left
    final, _, _ = load_checkpoint(tmp_path / "final")
    for a, b in zip(final.state_dict().values(), module.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


class _Kill(L.Callback):
    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == 12:
            raise RuntimeError("simulated crash")


def test_killed_fit_resumes_exactly(tmp_path):
    args = ("--trainer.max_steps", "20", "--trainer.ckpt_every_n_steps", "5")
    _, full = run(tiny(tmp_path / "full", *args))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny(tmp_path / "run", *args), callbacks=[_Kill()])
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["global_step"] == 10
    trainer, resumed = run(tiny(tmp_path / "run", *args))  # resume: auto
    assert trainer.global_step == 20
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model.d_modle", "3"], "d_modle"),
        (["--optim.lr", "-1"], "optim.lr"),
        (["--objective.corruption.eps", "1.5"], "eps"),
        (["--trainer.max_steps", "0"], "trainer.max_steps"),
        (["--model.n_kv_heads", "3"], "model.n_kv_heads"),
        (["--model.objective", "x"], "objective"),
    ],
)
def test_bad_config_is_one_line_error(tmp_path, capsys, args, needle):
    with pytest.raises(ConfigError, match=needle):
        tiny(tmp_path, *args)
    assert cli_main(["fit", "--config", TINY, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lm-core fit: error:") and needle in err and "\n" not in err


def test_unknown_yaml_key_and_vocab_mismatch(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  d_modle: 3\n")
    with pytest.raises(ConfigError, match="d_modle"):
        parse(["--config", TINY, "--config", str(bad)])
    with pytest.raises(ConfigError, match="model.vocab_size"):
        run(tiny(tmp_path, "--model.vocab_size", "100"))
    with pytest.raises(ConfigError, match="max_seq_len"):
        run(tiny(tmp_path, "--model.max_seq_len", "128"))
    assert not (tmp_path / "last.ckpt").exists()


def test_help_and_print_config(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "Width of the residual stream." in out and "--trainer.strategy" in out
    with pytest.raises(SystemExit):
        cli_main(["fit", "--config", TINY, "--model.n_layers", "3", "--print_config"])
    out = capsys.readouterr().out
    assert "d_model: 64" in out and "n_layers: 3" in out and "train: shakespeare" in out


def test_a_text_file_too_small_to_hold_out_names_data_val(tmp_path, capsys):
    """A user's own small text file: the error says which flag gives validation data and how the
    file was cut into documents, in one line, before any training."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world\nthis is a small corpus\n")
    argv = ["fit", "--config", TINY, "--data.train", str(corpus), "--out_dir", str(tmp_path / "o")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data.val FILE" in err[0] and "1 document(s)" in err[0], err
    assert not (tmp_path / "o" / "last.ckpt").exists()
