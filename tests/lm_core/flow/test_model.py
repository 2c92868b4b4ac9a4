"""Flow model (lm_core.flow): shapes and unpacking, checkpoint compatibility, codec features."""

from __future__ import annotations

import json

import pytest
import torch

from lm_core import Transformer
from lm_core.checkpoint import CheckpointError, save_checkpoint
from lm_core.cli import main as cli_main
from lm_core.config import FlowConfig, ModelConfig
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.flow import LatentCodec, load_flow_checkpoint
from lm_core.flow.codec import unpack_rows
from lm_core.flow.model import build_codec, save_flow_checkpoint
from tests.lm_core.tiny import TINY_FLOW, tiny_denoiser


def test_shapes_and_unpacking():
    codec = LatentCodec(11, 6, d_encoder=12, decoder_hidden=16)
    ids = torch.randint(0, 11, (3, 7))
    x = codec.encode(ids)
    assert x.shape == (3, 7, 6) and codec.decode_logits(x).shape == (3, 7, 11)
    den = tiny_denoiser(d_latent=6)
    assert den.cfg.time_conditioning and den.cfg.vocab_size == 1
    out = den(
        torch.randn(3, 7, 6), torch.rand(3), x_sc=x, given=torch.zeros(3, 7, dtype=torch.bool)
    )
    assert out.shape == (3, 7, 6)
    packed = torch.arange(10)[None]
    rows, valid = unpack_rows(packed, torch.tensor([0, 4, 6, 10], dtype=torch.int32))
    assert rows.tolist() == [[0, 1, 2, 3], [4, 5, 0, 0], [6, 7, 8, 9]]
    assert valid.sum(-1).tolist() == [4, 2, 4]


def test_flow_checkpoints_from_before_encoder_features_load_as_hidden_only(tmp_path):
    """A checkpoint whose flow config lacks encoder_features used the hidden states alone."""
    cfg = ModelConfig(vocab_size=259, d_model=32, n_layers=1, n_heads=2, max_seq_len=64)
    save_checkpoint(tmp_path / "enc", Transformer(cfg), ByteTokenizer())
    out = tmp_path / "run"
    assert cli_main(["fit", "--config", TINY_FLOW, "--out_dir", str(out), "--trainer.progress_bar",
                     "false", "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
                     "--objective.flow.codec_steps", "2", "--objective.flow.encoder_features",
                     "hidden", "--objective.flow.encoder_ckpt", str(tmp_path / "enc")]) == 0  # fmt: skip
    meta_file = out / "final" / "config.json"
    meta = json.loads(meta_file.read_text())
    del meta["extra"]["flow"]["config"]["encoder_features"]  # as written by older versions
    meta_file.write_text(json.dumps(meta))
    model, _, _ = load_flow_checkpoint(out / "final")
    assert not model.codec.with_embedding and model.codec.down.in_features == 32


def test_codec_features_can_append_the_encoders_token_embedding():
    """with_embedding: [hidden states | the frozen encoder's input embedding of each token]."""

    torch.manual_seed(0)
    enc = Transformer(ModelConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, max_seq_len=8))
    ids = torch.randint(0, 20, (2, 5))
    plain = LatentCodec(20, 4, encoder=enc)
    both = LatentCodec(20, 4, encoder=enc, with_embedding=True)
    h, hb = plain.features(ids), both.features(ids)
    assert h.shape == (2, 5, 16) and hb.shape == (2, 5, 32)  # [B, T, d_enc]
    torch.testing.assert_close(hb[..., :16], h)
    torch.testing.assert_close(hb[..., 16:], enc.tok_emb(ids))
    assert both.down.in_features == 32 and plain.down.in_features == 16
    with pytest.raises(Exception, match="encoder_features"):
        FlowConfig(encoder_features="embedding")


def _flow_checkpoint(path):
    flow = FlowConfig()
    codec = build_codec(flow, 10, None)
    return save_flow_checkpoint(path, codec, tiny_denoiser(d_latent=flow.d_latent), flow)


def _drop_flow_section(meta):
    del meta["extra"]["flow"]


def _shrink_latent(meta):
    meta["extra"]["flow"]["config"]["d_latent"] += 1


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (
            lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 5),
            "model.safetensors is corrupt",
        ),
        (_drop_flow_section, "config.json is corrupt"),
        (_shrink_latent, "weights do not match"),
    ],
    ids=["truncated weights", "no flow section", "shapes"],
)
def test_a_corrupt_flow_checkpoint_is_one_line_naming_it(tmp_path, corrupt, message, capsys):
    ck = _flow_checkpoint(tmp_path / "ck")
    load_flow_checkpoint(ck)  # whole, it loads
    if corrupt in (_drop_flow_section, _shrink_latent):
        meta = json.loads((ck / "config.json").read_text())
        corrupt(meta)
        (ck / "config.json").write_text(json.dumps(meta))
    else:
        corrupt(ck)
    with pytest.raises(CheckpointError, match=message) as err:
        load_flow_checkpoint(ck)
    assert str(ck) in str(err.value) and "\n" not in str(err.value)
    assert cli_main(["generate", "--ckpt", str(ck), "--prompt", "a"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
