"""``lm-core fit`` with ``objective.kind: sft`` on configs/lm/tiny-sft.yaml (synthetic JSONL)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from lm_core.checkpoint import load_checkpoint
from lm_core.config import ConfigError
from lm_core.train.config import parse
from lm_core.train.run import run

ROOT = Path(__file__).resolve().parents[3]
CFG = str(ROOT / "configs" / "lm" / "tiny-sft.yaml")
TINY_MASKED = str(ROOT / "configs" / "lm" / "tiny-masked.yaml")


def sft(out: Path, *extra: str):
    fast = ("--trainer.val_check_interval", "15", "--trainer.ckpt_every_n_steps", "15")
    return parse(["--config", CFG, "--out_dir", str(out), "--trainer.progress_bar", "false",
                  "--trainer.log_every_n_steps", "10", *fast, *extra])  # fmt: skip


class Spy(L.Callback):
    """Records each training step's loss and the canvas the denoiser saw against its batch."""

    def __init__(self) -> None:
        self.losses, self.seen, self._x = [], [], None

    def on_train_start(self, trainer, pl_module) -> None:
        def hook(_, args, kwargs):
            if pl_module.training:
                self._x = args[0].detach().clone()

        pl_module.net.register_forward_pre_hook(hook, with_kwargs=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        self.seen.append((self._x, batch["input_ids"].clone(), batch["maskable"].clone()))


@pytest.mark.learning
def test_tiny_sft_learns_and_never_masks_the_prompt(tmp_path):
    spy = Spy()
    trainer, module = run(sft(tmp_path, "--trainer.max_epochs", "3"), callbacks=[spy])
    assert trainer.global_step == 30  # 3 epochs of 10 batches (162 training examples, batch 16)
    mask_id = trainer.datamodule.tokenizer.mask_id
    masked_any = False
    for x, ids, maskable in spy.seen:
        assert torch.equal(x[~maskable], ids[~maskable])  # prompt cells are never masked
        assert ((x == mask_id) <= maskable).all()
        assert not maskable[:, 0].any()  # every row has a prompt
        masked_any |= bool((x == mask_id).any())
    assert masked_any
    first, last = sum(spy.losses[:5]) / 5, sum(spy.losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    assert float(trainer.callback_metrics["val/loss"]) < first
    model, tok, meta = load_checkpoint(tmp_path / "final")
    assert meta["objective"] == "sft" and tok.vocab_size == model.cfg.vocab_size == 259

    # init_from: continue from those weights (fresh optimiser); the model shape is the checkpoint's
    spy2 = Spy()
    args = ("--init_from", str(tmp_path / "final"), "--model.d_model", "32",
            "--trainer.max_epochs", "null", "--trainer.max_steps", "5", "--resume", "null")  # fmt: skip
    trainer2, module2 = run(sft(tmp_path / "ft", *args), callbacks=[spy2])
    assert module2.model_cfg.d_model == 64 and trainer2.global_step == 5
    assert sum(spy2.losses) / 5 < 0.6 * first


def test_sft_objective_and_data_must_match(tmp_path):
    with pytest.raises(ConfigError, match="SFTDataModule"):
        run(sft(tmp_path, "--objective.kind", "masked"))
    masked = parse(["--config", TINY_MASKED, "--out_dir", str(tmp_path), "--objective.kind", "sft"])
    with pytest.raises(ConfigError, match="SFTDataModule"):
        run(masked)
    with pytest.raises(ConfigError, match="init_from"):
        run(sft(tmp_path, "--init_from", str(tmp_path / "missing")))
