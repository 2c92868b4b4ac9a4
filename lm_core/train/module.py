"""Thin Lightning wrapper: steps, logging, optimiser and schedule. No algorithm lives here.

:class:`DiffusionLM` holds a :class:`~lm_core.nn.transformer.Transformer` (``self.net``) and
calls :mod:`lm_core.objectives` on each batch. Batches come from ``lm_core.data``:

- packed: ``{"input_ids": [1, T] long, "cu_seqlens": int32 [N + 1]}`` (documents never attend
  to each other, one noise level per document);
- padded: ``{"input_ids": [B, L] long, "valid": bool [B, L]}`` (``valid`` marks real tokens:
  they are the maskable ones, and attention keys are restricted to them);
- SFT (objective ``sft``, :class:`lm_core.data.SFTDataModule`): ``{"input_ids": [B, T] long,
  "maskable": bool [B, T], "prompt_len": [B]}``, rows right-padded with EOS; only ``maskable``
  cells (response, EOS, EOS padding) are ever masked and the loss is normalised per answer.

Randomness of the forward process is drawn from a generator seeded by (seed, global step,
micro-batch, rank), so a resumed run draws exactly the masks an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import math
import time

import lightning as L
import torch
from torch import Tensor

from lm_core.config import CorruptionConfig, ModelConfig, ObjectiveConfig, OptimConfig
from lm_core.nn.transformer import Transformer
from lm_core.objectives import causal_lm_loss, masked_diffusion_loss
from lm_core.schedule import EMA, wsd_scheduler

_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def _as(cls, value):
    """Accept a dataclass instance or its dict form (as stored in a checkpoint's hparams)."""
    if isinstance(value, cls):
        return value
    if cls is ObjectiveConfig and isinstance(value.get("corruption"), dict):
        value = {**value, "corruption": CorruptionConfig(**value["corruption"])}
    if cls is OptimConfig and "betas" in value:
        value = {**value, "betas": tuple(value["betas"])}
    return cls(**value)


def batch_tokens(batch: dict) -> int:
    """Number of real tokens in a packed or padded batch."""
    valid = batch.get("valid")
    return int(valid.sum()) if valid is not None else int(batch["input_ids"].numel())


class DiffusionLM(L.LightningModule):
    """Masked-diffusion (or causal AR baseline) language model training module.

    Args:
        model: Transformer shape (``ModelConfig`` or its dict); ``vocab_size`` must be resolved.
        objective: ``kind`` "masked" (ELBO, needs ``mask_id``), "sft" (LLaDA's SFT loss on SFT
            batches, needs ``mask_id``) or "ar" (needs ``model.causal``).
        optim: AdamW + WSD settings.
        max_steps: optimiser steps of the whole run (sets the WSD decay tail).
        mask_id: the tokenizer's MASK id (masked objective).
        seed: base seed of the forward-process noise.
    """

    def __init__(
        self,
        model: ModelConfig | dict,
        objective: ObjectiveConfig | dict,
        optim: OptimConfig | dict,
        *,
        max_steps: int,
        mask_id: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model_cfg = _as(ModelConfig, model)
        self.objective = _as(ObjectiveConfig, objective)
        self.optim = _as(OptimConfig, optim)
        if self.objective.kind == "dmax" and (mask_id is None or self.model_cfg.causal):
            raise ValueError("objective.kind=dmax needs mask_id and a bidirectional model")
        kind = self.objective.kind
        if kind in ("masked", "sft") and mask_id is None:
            raise ValueError(f"objective.kind={kind} needs the tokenizer's mask_id")
        if kind == "ar" and not self.model_cfg.causal:
            raise ValueError("objective.kind=ar needs model.causal=true")
        if kind in ("masked", "sft") and self.model_cfg.causal:
            raise ValueError(
                f"objective.kind={kind} needs a bidirectional model (model.causal=false)"
            )
        if mask_id is not None and not 0 <= mask_id < self.model_cfg.vocab_size:
            raise ValueError(
                f"mask_id={mask_id} is outside model.vocab_size={self.model_cfg.vocab_size}"
            )
        self.max_steps, self.mask_id, self.seed = int(max_steps), mask_id, int(seed)
        # plain dicts only, so Lightning checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters(
            {
                "model": self.model_cfg.to_dict(),
                "objective": dataclasses.asdict(self.objective),
                "optim": dataclasses.asdict(self.optim),
                "max_steps": self.max_steps,
                "mask_id": mask_id,
                "seed": self.seed,
            }
        )
        self.net = Transformer(self.model_cfg)
        self.no_decay = {
            n for n, p in self.net.named_parameters() if p.dim() < 2 or n.startswith("tok_emb")
        }
        self.ema: EMA | None = None
        self._ema_state: dict | None = None
        self._val_sums: list[float] = [0.0, 0.0]
        self._t_last: float | None = None

    # ----------------------------------------------------------------- helpers
    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        return self.net.num_parameters(exclude_embeddings)

    def _generator(self, *key: int) -> torch.Generator:
        s = self.seed
        for k in key:
            s = (s * 1_000_003 + int(k) + 1) % (2**61 - 1)
        return torch.Generator(device=self.device).manual_seed(s)

    def compute_loss(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict]:
        """Objective on one batch -> (scalar loss in nats per token, detached stats)."""
        ids = batch["input_ids"]
        cu, valid = batch.get("cu_seqlens"), batch.get("valid")
        attn_mask = None if valid is None else valid[:, None, None, :]
        if self.objective.kind == "ar":
            return causal_lm_loss(self.net, ids, cu_seqlens=cu, attn_mask=attn_mask, valid=valid)
        c = self.objective.corruption
        if self.objective.kind == "dmax":  # on-policy self-correction (lm_core.dmax)
            from lm_core.dmax import dmax_loss

            sft = "maskable" in batch
            return dmax_loss(
                self.net, ids, mask_id=self.mask_id, share=self.objective.dmax_share,
                maskable=batch["maskable"] if sft else valid, cu_seqlens=None if sft else cu,
                attn_mask=None if sft else attn_mask, eps=c.eps, stratified=c.stratified,
                normalise="answer" if sft else "tokens",
                mask_ratio=self.objective.dmax_mask_ratio, generator=generator,
            )  # fmt: skip
        if self.objective.kind == "sft":
            if "maskable" not in batch:
                raise ValueError(
                    "objective.kind=sft needs SFT batches with 'maskable' "
                    "(data.class_path: lm_core.data.SFTDataModule)"
                )
            return masked_diffusion_loss(
                self.net,
                ids,
                mask_id=self.mask_id,
                maskable=batch["maskable"],
                eps=c.eps,
                stratified=c.stratified,
                normalise="answer",
                generator=generator,
            )
        return masked_diffusion_loss(
            self.net,
            ids,
            mask_id=self.mask_id,
            maskable=valid,
            cu_seqlens=cu,
            attn_mask=attn_mask,
            eps=c.eps,
            stratified=c.stratified,
            generator=generator,
        )

    # ----------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        g = self._generator(self.global_step, batch_idx, self.global_rank)
        loss, stats = self.compute_loss(batch, g)
        n_tok = batch_tokens(batch)
        now = time.perf_counter()
        if self._t_last is not None and now > self._t_last:
            self.log("train/tokens_per_s", n_tok * self.trainer.world_size / (now - self._t_last))
        self._t_last = now
        self.log("train/loss", loss.detach(), prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], prog_bar=True)
        if "masked_frac" in stats:
            self.log("train/masked_frac", stats["masked_frac"])
        if "sc_wrong_frac" in stats:  # dmax: share of the model's own proposals that were wrong
            self.log("train/sc_wrong_frac", stats["sc_wrong_frac"])
        return loss

    def on_before_zero_grad(self, optimizer) -> None:
        if self.ema is not None and self.training:
            self.ema.update(self.net)

    # ----------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_sums = [0.0, 0.0]
        if self.ema is not None:
            self._ema_ctx = self.ema.swapped(self.net)
            self._ema_ctx.__enter__()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        g = self._generator(10**9, batch_idx, self.global_rank)  # same masks at every validation
        loss, _ = self.compute_loss(batch, g)
        # SFT losses are means over answers, so they are weighted by answers, not tokens
        n = batch["input_ids"].shape[0] if "maskable" in batch else batch_tokens(batch)
        self._val_sums[0] += float(loss) * n
        self._val_sums[1] += n

    def on_validation_epoch_end(self) -> None:
        if self.ema is not None:
            self._ema_ctx.__exit__(None, None, None)
        sums = torch.tensor(self._val_sums, dtype=torch.float64, device=self.device)
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        loss = float(sums[0] / sums[1].clamp(min=1))
        name = "ppl" if self.objective.kind == "ar" else "ppl_bound"
        self.log("val/loss", loss, prog_bar=True, sync_dist=False)
        self.log("val/bits_per_token", loss / math.log(2), sync_dist=False)
        self.log(f"val/{name}", math.exp(min(loss, 50.0)), sync_dist=False)

    # ----------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        """AdamW (no weight decay on norms, embeddings and 1-D params) + per-step WSD."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            clean = name.removeprefix("net.")
            for prefix in _WRAPPER_PREFIXES:
                clean = clean.replace(prefix, "")
            (no_decay if clean in self.no_decay else decay).append(p)
        o = self.optim
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": o.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=o.lr,
            betas=tuple(o.betas),
        )
        sched = wsd_scheduler(
            opt,
            max_steps=self.max_steps,
            warmup_steps=o.warmup_steps,
            decay_fraction=o.decay_fraction,
            min_lr_ratio=o.min_lr_ratio,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ----------------------------------------------------------------- EMA state
    def on_fit_start(self) -> None:
        if self.optim.ema_decay > 0:
            self.ema = EMA(self.net, self.optim.ema_decay)
            if self._ema_state is not None:
                self.ema.load_state_dict(self._ema_state)
                self._ema_state = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.ema is not None:
            checkpoint["ema"] = self.ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._ema_state = checkpoint.get("ema")

    # ----------------------------------------------------------------- export
    def export(self, path, tokenizer=None, extra: dict | None = None):
        """Write an lm_core checkpoint directory (EMA weights when EMA is on); atomic."""
        from lm_core.checkpoint import save_checkpoint

        extra = {"global_step": int(self.global_step), **(extra or {})}
        if tokenizer is not None and not hasattr(tokenizer, "save"):
            # e.g. a LLaDA checkpoint's HuggingFace tokenizer (init_from): keep its files there
            extra["tokenizer"] = "not saved: use the tokenizer of the init_from checkpoint"
            tokenizer = None
        if self.ema is None:
            return save_checkpoint(
                path,
                self.net,
                tokenizer,
                mask_id=self.mask_id,
                objective=self.objective.kind,
                extra=extra,
            )
        with self.ema.swapped(self.net):
            return save_checkpoint(
                path,
                self.net,
                tokenizer,
                mask_id=self.mask_id,
                objective=self.objective.kind,
                extra=extra,
            )


class ResumableLoader:
    """Makes a training ``DataLoader`` exactly resumable (Lightning's ``_Stateful`` protocol).

    Map-style datasets: each epoch's order is a permutation seeded by (seed, epoch) and rank r
    of w takes every w-th index. Iterable datasets with ``set_epoch`` (``PackedDataset``): the
    epoch is set from the trainer (the dataset's plan is a function of its seed and epoch) and
    the loader is iterated as is. Either way, after ``load_state_dict`` the first iteration skips
    the batches the interrupted run already trained on; Lightning keeps ``state_dict()`` in
    ``last.ckpt``.
    """

    def __init__(self, loader, trainer, *, seed: int, shuffle: bool = True) -> None:
        self.loader, self.trainer, self.seed, self.shuffle = loader, trainer, seed, shuffle
        self.iterable = isinstance(loader.dataset, torch.utils.data.IterableDataset)
        self._skip = 0

    def _batches(self, epoch: int) -> list[list[int]]:
        n, world = len(self.loader.dataset), max(self.trainer.world_size, 1)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        per_rank = n // world
        mine = order[self.trainer.global_rank : per_rank * world : world]
        bs = self.loader.batch_size or 1
        out = [mine[i : i + bs] for i in range(0, len(mine), bs)]
        if self.loader.drop_last and out and len(out[-1]) < bs:
            out.pop()
        return out

    def __len__(self) -> int:
        return len(self.loader) if self.iterable else len(self._batches(0))

    def __iter__(self):
        epoch, skip, self._skip = self.trainer.current_epoch, self._skip, 0
        if self.iterable:
            if hasattr(self.loader.dataset, "set_epoch"):
                self.loader.dataset.set_epoch(epoch)
            rank, world = self.trainer.global_rank, max(self.trainer.world_size, 1)
            for i, batch in enumerate(self.loader):  # rank r takes batches r, r + w, ...
                if i >= skip * world and i % world == rank:
                    yield batch
            return
        batches = self._batches(epoch)
        dl = torch.utils.data.DataLoader(
            self.loader.dataset,
            batch_sampler=batches[skip % max(len(batches), 1) :],
            collate_fn=self.loader.collate_fn,
            num_workers=self.loader.num_workers,
            pin_memory=self.loader.pin_memory,
        )
        yield from dl

    def state_dict(self) -> dict:
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"processed": int(done)}

    def load_state_dict(self, state: dict) -> None:
        self._skip = int(state.get("processed", 0))


class ExportCallback(L.Callback):
    """Writes lm_core checkpoint dirs: ``latest`` and ``best`` after validations, ``final`` at the end."""

    def __init__(self, out_dir, tokenizer) -> None:
        from pathlib import Path

        self.out_dir, self.tokenizer = Path(out_dir), tokenizer
        self.best = float("inf")

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        loss = trainer.callback_metrics.get("val/loss")
        extra = {} if loss is None else {"val_loss": float(loss)}
        pl_module.export(self.out_dir / "latest", self.tokenizer, extra)
        if loss is not None and float(loss) < self.best:
            self.best = float(loss)
            pl_module.export(self.out_dir / "best", self.tokenizer, extra)

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            pl_module.export(self.out_dir / "final", self.tokenizer)


class LogLine(L.Callback):
    """A readable line every ``every`` steps: step, loss, lr, tokens/s (progress-bar safe)."""

    def __init__(self, every: int) -> None:
        self.every = max(int(every), 1)
        self._t0, self._tokens = None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()
        self._tokens += batch_tokens(batch) * trainer.world_size
        step = trainer.global_step
        if (
            step % self.every
            or not trainer.is_global_zero
            or batch_idx % trainer.accumulate_grad_batches
        ):
            return
        m = trainer.callback_metrics
        dt = max(time.perf_counter() - self._t0, 1e-9)
        pl_module.print(
            f"step {step}/{trainer.max_steps}  loss {float(m.get('train/loss', float('nan'))):.4f}"
            f"  lr {trainer.optimizers[0].param_groups[0]['lr']:.2e}  tokens/s {self._tokens / dt:,.0f}"
        )
