"""Throughput helpers: model FLOPs against torch's FLOP counter, GPU peaks for MFU (none on CPU,
so MFU is not logged there), the AdamW kernel choice, the compile flag and the time budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lm_core.checkpoint import load_checkpoint
from lm_core.config import ConfigError, ModelConfig, ObjectiveConfig, OptimConfig
from lm_core.nn.transformer import Transformer
from lm_core.train.config import parse
from lm_core.train.module import DiffusionLM
from lm_core.train.run import run
from lm_core.train.sharding import ScaleOptions
from lm_core.train.throughput import (
    adamw_options,
    gpu_peak_tflops,
    peak_flops,
    train_flops,
)

TINY = str(Path(__file__).resolve().parents[3] / "configs" / "lm" / "tiny-masked.yaml")
CFG = ModelConfig(vocab_size=300, d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, max_seq_len=512)


def test_model_flops_match_torchs_flop_counter():
    """Forward + backward matmul FLOPs of the masked-only loss: torch's counter sees the linear
    layers and the head (it does not count CPU SDPA, so the attention term is left out here)."""
    torch.manual_seed(0)
    net = Transformer(CFG)
    T = 128
    ids = torch.randint(0, 300, (2, T))
    at = torch.rand(2, T) < 0.5
    with FlopCounterMode(display=False) as counter:
        net(ids, logits_at=at, targets=ids[at]).sum().backward()
    frac = float(at.float().mean())
    attention = 12.0 * CFG.n_layers * T * CFG.d_model * ids.numel()
    want = train_flops(CFG, {"input_ids": ids}, frac) - attention
    assert counter.get_total_flops() == pytest.approx(want, rel=1e-3)


def test_packed_batches_count_attention_within_each_document():
    ids = torch.zeros(1, 30, dtype=torch.long)
    packed = {"input_ids": ids, "cu_seqlens": torch.tensor([0, 10, 30], dtype=torch.int32)}
    attention = 12.0 * CFG.n_layers * CFG.d_model * (10 * 10 + 20 * 20)
    whole = train_flops(CFG, {"input_ids": ids})
    assert whole - train_flops(CFG, packed) == pytest.approx(
        12.0 * CFG.n_layers * CFG.d_model * 30 * 30 - attention
    )


def test_gpu_peaks_for_mfu_and_none_on_cpu():
    assert gpu_peak_tflops("NVIDIA H100 80GB HBM3", "bf16-mixed") == 989.0
    assert gpu_peak_tflops("NVIDIA H100 PCIe", "bf16-mixed") == 756.0
    assert gpu_peak_tflops("NVIDIA A100-SXM4-80GB", "32-true") == 156.0
    assert gpu_peak_tflops("Some Future GPU", "bf16-mixed") is None
    assert peak_flops(torch.device("cpu"), "bf16-mixed") is None


def test_fused_adamw_on_cuda_only():
    assert adamw_options(torch.device("cuda", 0)) == {"fused": True}
    assert adamw_options(torch.device("cpu")) == {}


def test_compile_flag_compiles_each_block_in_place():
    module = DiffusionLM(
        CFG, ObjectiveConfig(), OptimConfig(), max_steps=1, mask_id=299,
        scale=ScaleOptions(compile=True, activation_checkpointing=True),
    )  # fmt: skip
    names = [n for n, _ in module.net.named_parameters()]
    module.configure_model()
    assert all(b._compiled_call_impl is not None for b in module.net.blocks)
    assert module.net.activation_checkpointing
    assert [n for n, _ in module.net.named_parameters()] == names  # state dict keys unchanged


def test_tokens_per_s_logged_and_no_mfu_on_cpu_and_max_time_still_exports(tmp_path):
    """A wall-clock budget stops a run long before max_steps; final/ and last.ckpt are
    written all the same."""
    cfg = parse(
        ["--config", TINY, "--out_dir", str(tmp_path), "--trainer.progress_bar", "false",
         "--trainer.max_steps", "100000", "--trainer.max_time", "00:00:00:03",
         "--trainer.val_check_interval", "100000", "--trainer.log_every_n_steps", "1"]
    )  # fmt: skip
    trainer, module = run(cfg)
    assert 1 < trainer.global_step < 100000
    assert "train/tokens_per_s" in trainer.callback_metrics
    assert "train/mfu" not in trainer.callback_metrics
    model, _, meta = load_checkpoint(tmp_path / "final")
    assert meta["extra"]["global_step"] == trainer.global_step
    for a, b in zip(model.state_dict().values(), module.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    step = torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"]
    assert step == trainer.global_step
    # the stopped run resumes from where the budget ran out (resume: auto)
    more = parse(
        ["--config", TINY, "--out_dir", str(tmp_path), "--trainer.progress_bar", "false",
         "--trainer.max_steps", str(step + 3), "--trainer.val_check_interval", "100000"]
    )  # fmt: skip
    assert run(more)[0].global_step == step + 3


def test_bad_max_time_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="trainer.max_time"):
        parse(["--config", TINY, "--trainer.max_time", "30 minutes"])
