"""Thin LightningModule for the numeric denoiser: steps, logging, optimiser. No algorithms inside.

The loss is :func:`tsdiff.diffusion.training_loss` (lm_core's masked-diffusion ELBO over horizon
cells, or the velocity loss in flow mode); the optimiser is AdamW with lm_core's warmup-stable-decay schedule.
Under a wall-clock budget (``Trainer(max_time=...)``) the schedule follows the share of the budget
spent as well as the step count, so a run cut by time still ends its learning-rate decay.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from lm_core.schedule import wsd_scheduler
from tsdiff.diffusion import training_loss
from tsdiff.model import NumericDenoiser, TSModelConfig


class TSDiffModule(L.LightningModule):
    """Trains a :class:`NumericDenoiser` on batches of windows (tsdiff.data.windows shapes)."""

    def __init__(
        self,
        model_config: dict,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        max_steps: int = 1000,
        warmup_steps: int = 50,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = NumericDenoiser(TSModelConfig(**model_config))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, stats = training_loss(self.model, batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["ctx"].shape[0])
        self.log("masked_frac", stats["masked_frac"], batch_size=batch["ctx"].shape[0])
        return loss

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        timer = next((cb for cb in self.trainer.callbacks if isinstance(cb, Timer)), None)
        if timer is None:
            return
        spent = timer.time_elapsed("train")
        left = timer.time_remaining("train")
        if left is None or spent + left <= 0:
            return
        self._wsd.time_fraction = min(1.0, spent / (spent + left))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        g = torch.Generator(device=batch["ctx"].device).manual_seed(batch_idx)
        loss, _ = training_loss(self.model, batch, generator=g)
        self.log("val_loss", loss, prog_bar=True, batch_size=batch["ctx"].shape[0], sync_dist=True)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.dim() < 2 or "emb" in name else decay).append(p)
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.hparams.lr,
            betas=(0.9, 0.95),
        )
        sched = wsd_scheduler(
            opt,
            max_steps=self.hparams.max_steps,
            warmup_steps=self.hparams.warmup_steps,
            decay_fraction=0.3,
            min_lr_ratio=0.05,
        )
        self._wsd = sched.lr_lambdas[0]  # the WSDMultiplier that on_train_batch_start updates
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
