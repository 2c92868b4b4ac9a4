"""DMax end to end: lm-core fit with objective.kind dmax, then generate --sampler dmax."""

from __future__ import annotations

from pathlib import Path

import torch

from lm_core.checkpoint import load_checkpoint, save_checkpoint
from lm_core.cli import main as cli_main
from lm_core.config import ModelConfig
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.nn.transformer import Transformer
from lm_core.train.config import parse
from lm_core.train.run import run

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
MASK = 11

EOS, PAD, SEP = 12, 13, 10


def test_fit_kind_dmax_from_a_checkpoint_and_generate_with_dmax(tmp_path, capsys):
    tok = ByteTokenizer()
    init = Transformer(ModelConfig(vocab_size=259, d_model=32, n_layers=1, n_heads=2,
                                   max_seq_len=256))  # fmt: skip
    save_checkpoint(tmp_path / "init", init, tok)
    cfg = parse(["--config", str(ROOT / "configs/lm/tiny-dmax.yaml"), "--out_dir",
                 str(tmp_path / "run"), "--trainer.progress_bar", "false",
                 "--trainer.max_steps", "4", "--trainer.val_check_interval", "4",
                 "--init_from", str(tmp_path / "init")])  # fmt: skip
    assert cfg.objective.kind == "dmax" and cfg.objective.dmax_share == 0.5
    trainer, module = run(cfg)
    assert trainer.global_step == 4 and module.model_cfg.d_model == 32  # the checkpoint's shape
    assert torch.isfinite(torch.tensor(float(trainer.callback_metrics["val/loss"])))
    model, _, meta = load_checkpoint(tmp_path / "run" / "final")
    assert meta["objective"] == "dmax"
    code = cli_main(["generate", "--ckpt", str(tmp_path / "run" / "final"), "--prompt", "To be",
                     "--sampler", "dmax", "--gen-length", "8", "--block-length", "4",
                     "--tau", "0.5"])  # fmt: skip
    assert code == 0
    assert "sampler=dmax" in capsys.readouterr().out
