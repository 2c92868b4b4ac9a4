"""Flow LM (lm_core.flow): shapes, time convention, the velocity-loss identity, samplers with an
oracle, a synthetic learning test, and fit / generate / score end to end on tiny-flow."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lm_core.cli import main as cli_main
from lm_core.config import FlowConfig, ModelConfig
from lm_core.corruption import flow_interpolate
from lm_core.flow import (
    EulerODE,
    FlowDenoiser,
    LatentCodec,
    ReNoiseSDE,
    flow_matching_loss,
    flow_sample,
    load_flow_checkpoint,
    train_codec,
    velocity_weight,
)
from lm_core.flow.codec import unpack_rows
from lm_core.flow.denoiser import denoiser_config, draw_prompts

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "lm" / "tiny-flow.yaml")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _denoiser(d_latent=8, d_model=32, n_layers=1, self_condition=True, max_seq_len=32):
    cfg = denoiser_config(ModelConfig(vocab_size=10, d_model=d_model, n_layers=n_layers, n_heads=2,
                                      max_seq_len=max_seq_len))  # fmt: skip
    return FlowDenoiser(cfg, d_latent, self_condition)


def test_shapes_and_unpacking():
    codec = LatentCodec(11, 6, d_encoder=12, decoder_hidden=16)
    ids = torch.randint(0, 11, (3, 7))
    x = codec.encode(ids)
    assert x.shape == (3, 7, 6) and codec.decode_logits(x).shape == (3, 7, 11)
    den = _denoiser(d_latent=6)
    assert den.cfg.time_conditioning and den.cfg.vocab_size == 1
    out = den(
        torch.randn(3, 7, 6), torch.rand(3), x_sc=x, given=torch.zeros(3, 7, dtype=torch.bool)
    )
    assert out.shape == (3, 7, 6)
    packed = torch.arange(10)[None]
    rows, valid = unpack_rows(packed, torch.tensor([0, 4, 6, 10], dtype=torch.int32))
    assert rows.tolist() == [[0, 1, 2, 3], [4, 5, 0, 0], [6, 7, 8, 9]]
    assert valid.sum(-1).tolist() == [4, 2, 4]


def test_time_convention():
    x, eps = torch.randn(4, 5, 3), torch.randn(4, 5, 3)
    torch.testing.assert_close(flow_interpolate(x, eps, torch.zeros(4)), x)
    torch.testing.assert_close(flow_interpolate(x, eps, torch.ones(4)), eps)
    half = flow_interpolate(x, eps, torch.full((4,), 0.5))
    torch.testing.assert_close(half, 0.5 * (x + eps))


def test_velocity_loss_identity():
    """|v_hat - v|^2 with v = eps - x, v_hat = (z_t - x_hat) / t equals |x_hat - x|^2 / t^2."""
    g = torch.Generator().manual_seed(0)
    x, eps, x_hat = (torch.randn(6, 4, 5, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.rand(6, generator=g, dtype=torch.float64) * 0.9 + 0.1
    z = flow_interpolate(x, eps, t)
    v, v_hat = eps - x, (z - x_hat) / t[:, None, None]
    lhs = (v_hat - v).pow(2).mean(-1)
    rhs = (x_hat - x).pow(2).mean(-1) * velocity_weight(t, 0.05)[:, None]
    torch.testing.assert_close(lhs, rhs)

    class Fixed(torch.nn.Module):  # a "denoiser" returning fixed predictions
        self_condition = False

        def forward(self, z, t, **kw):
            return x_hat.float()

    cfg = FlowConfig(t_min=0.05)
    mask = torch.ones(6, 4, dtype=torch.bool)
    loss, _ = flow_matching_loss(
        Fixed(), x.float(), cfg=cfg, loss_mask=mask, t=t.float(), generator=torch.Generator()
    )
    torch.testing.assert_close(loss, lhs.mean().float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampler", [EulerODE(), ReNoiseSDE(0.0), ReNoiseSDE(0.5), ReNoiseSDE(1.0)])
def test_sampler_with_oracle_reaches_target(sampler):
    target = torch.randn(2, 6, 4)
    seen = []

    def oracle(z, t, x_sc):
        seen.append(float(t[0]))
        return target

    given = torch.zeros(2, 6, dtype=torch.bool)
    given[:, :2] = True
    x0, nfe = flow_sample(
        oracle, (2, 6, 4), steps=5, sampler=sampler, given=given, x_given=target,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert nfe == 5 and seen == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    torch.testing.assert_close(x0, target, atol=1e-5, rtol=0)


def test_euler_oracle_stays_on_the_path():
    """With an exact x-predictor each Euler step lands on (1 - t') x + t' eps for the same eps."""
    x, eps = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    z = eps.clone()
    for t, tn in [(1.0, 0.75), (0.75, 0.3), (0.3, 0.0)]:
        z = EulerODE().step(z, x, t, tn)
        torch.testing.assert_close(z, (1 - tn) * x + tn * eps)
    torch.testing.assert_close(
        ReNoiseSDE(0.0).step(eps, x, 1.0, 0.6), EulerODE().step(eps, x, 1.0, 0.6)
    )


def test_prompt_draws_respect_validity():
    valid = torch.ones(64, 10, dtype=torch.bool)
    valid[:, 8:] = False
    given, dropped = draw_prompts(
        valid, FlowConfig(prompt_prob=0.5, cond_drop=0.5), torch.Generator()
    )
    k = given.sum(-1)
    assert (k <= 4).all() and 0 < (k > 0).float().mean() < 1
    assert (given[:, 0] | (k == 0)).all() and not (dropped & (k == 0)).any()


@pytest.mark.learning
def test_flow_learns_a_synthetic_pattern():
    """Synthetic data: every row is the same 8-token pattern; after 400 steps, unconditional
    Euler samples (8 NFE) decode to the pattern. (Absolute position comes only from attention
    patterns under RoPE, hence a few hundred steps.)"""
    torch.manual_seed(0)
    pattern = torch.tensor([1, 5, 2, 7, 3, 3, 6, 4])
    batch = {"input_ids": pattern.repeat(16, 1)}
    codec = LatentCodec(8, 4, d_encoder=8)
    train_codec(codec, [batch], steps=60, lr=0.03, stat_batches=1)
    assert (codec.decode(codec.encode(pattern[None])) == pattern).all()
    den = _denoiser(d_latent=4, d_model=32, n_layers=2)
    opt = torch.optim.AdamW(den.parameters(), lr=1e-2)
    # decay to 0: at a constant 1e-2 the loss spikes now and then (seed-dependent, so the CPU's
    # summation order decided whether step 400 landed on a spike: accuracy 0.36-0.59 on 2 of 7
    # seeds); with the decay, 7 of 7 seeds tried end at accuracy 0.97-1.0
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=400)
    cfg, g = FlowConfig(), torch.Generator().manual_seed(1)
    with torch.no_grad():
        x = codec.encode(batch["input_ids"])
    for _ in range(400):
        loss, _ = flow_matching_loss(
            den, x, cfg=cfg, loss_mask=torch.ones(16, 8, dtype=torch.bool), generator=g
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    den.eval()
    with torch.no_grad():
        z0, nfe = flow_sample(lambda z, t, s: den(z, t, x_sc=s), (8, 8, 4), steps=8, generator=g)
    acc = (codec.decode(z0) == pattern).float().mean()
    assert nfe == 8 and acc >= 0.9, acc


def test_fit_generate_score_tiny_flow(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["fit", "--config", TINY, "--out_dir", str(out), "--trainer.progress_bar", "false",
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
    from lm_core import Transformer
    from lm_core.checkpoint import save_checkpoint
    from lm_core.data.tokenizers import ByteTokenizer

    cfg = ModelConfig(vocab_size=259, d_model=32, n_layers=1, n_heads=2, max_seq_len=64)
    save_checkpoint(tmp_path / "enc", Transformer(cfg), ByteTokenizer())
    out = tmp_path / "run"
    assert cli_main(["fit", "--config", TINY, "--out_dir", str(out), "--trainer.progress_bar",
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


def test_flow_checkpoints_from_before_encoder_features_load_as_hidden_only(tmp_path):
    """A checkpoint whose flow config lacks encoder_features used the hidden states alone."""
    import json

    from lm_core import Transformer
    from lm_core.checkpoint import save_checkpoint
    from lm_core.data.tokenizers import ByteTokenizer

    cfg = ModelConfig(vocab_size=259, d_model=32, n_layers=1, n_heads=2, max_seq_len=64)
    save_checkpoint(tmp_path / "enc", Transformer(cfg), ByteTokenizer())
    out = tmp_path / "run"
    assert cli_main(["fit", "--config", TINY, "--out_dir", str(out), "--trainer.progress_bar",
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
    from lm_core import Transformer

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
