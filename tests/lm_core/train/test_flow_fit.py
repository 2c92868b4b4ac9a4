"""Flow LM end to end: fit / generate / score on tiny-flow, and fit with a masked-DLM encoder."""

from __future__ import annotations

import torch

from lm_core import Transformer
from lm_core.checkpoint import save_checkpoint
from lm_core.cli import main as cli_main
from lm_core.config import ModelConfig
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.flow import load_flow_checkpoint
from tests.lm_core.tiny import TINY_FLOW


def test_fit_generate_score_tiny_flow(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["fit", "--config", TINY_FLOW, "--out_dir", str(out), "--trainer.progress_bar", "false",
            "--trainer.max_steps", "12", "--trainer.val_check_interval", "6",
            "--objective.flow.codec_steps", "20"]  # fmt: skip
    assert cli_main(args) == 0
    model, tok, meta = load_flow_checkpoint(out / "final")
    assert meta["objective"] == "flow" and meta["extra"]["flow"]["vocab_size"] == tok.vocab_size
    assert model.codec.z_std.shape == (16,) and not any(
        p.requires_grad for p in model.codec.parameters()
    )
    assert (out / "best" / "config.json").is_file() and (out / "last.ckpt").is_file()
    capsys.readouterr()
    gen = ["generate", "--ckpt", str(out / "final"), "--prompt", "KING:", "--gen-length", "12"]
    assert cli_main([*gen, "--steps", "4", "--cfg", "1.5"]) == 0
    assert "nfe=4 forward_passes=8" in capsys.readouterr().out
    assert cli_main([*gen, "--steps", "3", "--sampler", "sde", "--churn", "1.0"]) == 0
    assert "sampler=sde nfe=3" in capsys.readouterr().out
    assert cli_main([*gen, "--sampler", "threshold"]) == 2
    doc = tmp_path / "doc.txt"
    doc.write_text("To be, or not to be, that is the question.")
    assert (
        cli_main(["score", "--ckpt", str(out / "final"), "--text", str(doc), "--samples", "4"]) == 0
    )
    text = capsys.readouterr().out
    assert "flow-matching loss" in text and "not a likelihood bound" in text
    # resume: auto continues from last.ckpt without retraining the codec
    assert (
        cli_main([*args[:-6], "--trainer.max_steps", "14", "--trainer.val_check_interval", "6"])
        == 0
    )
    again, _, _ = load_flow_checkpoint(out / "final")
    torch.testing.assert_close(again.codec.decoder[0].weight, model.codec.decoder[0].weight)


def test_fit_with_a_masked_dlm_encoder(tmp_path, capsys):
    """encoder_ckpt: the frozen encoder is a (here random) masked DLM checkpoint, copied in."""

    cfg = ModelConfig(vocab_size=259, d_model=32, n_layers=1, n_heads=2, max_seq_len=64)
    save_checkpoint(tmp_path / "enc", Transformer(cfg), ByteTokenizer())
    out = tmp_path / "run"
    assert cli_main(["fit", "--config", TINY_FLOW, "--out_dir", str(out), "--trainer.progress_bar",
                     "false", "--trainer.max_steps", "4", "--trainer.val_check_interval", "4",
                     "--objective.flow.codec_steps", "10",
                     "--objective.flow.encoder_ckpt", str(tmp_path / "enc")]) == 0  # fmt: skip
    model, _, meta = load_flow_checkpoint(out / "final")
    assert model.codec.contextual and meta["extra"]["flow"]["encoder"]["model"]["d_model"] == 32
    # default encoder_features "hidden+embedding": the bottleneck reads 2 x d_model features
    assert model.codec.with_embedding and model.codec.down.in_features == 64
    assert cli_main(["score", "--ckpt", str(out / "final"), "--prompt", "To be",
                     "--continuation", ", or not", "--samples", "4"]) == 0  # fmt: skip
    assert "codec round-trip accuracy" in capsys.readouterr().out
