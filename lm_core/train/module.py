"""Thin Lightning wrapper: steps, logging, optimiser and schedule. No algorithm lives here.

:class:`DiffusionLM` holds a :class:`~lm_core.nn.transformer.Transformer` (``self.net``) and
calls the loss function that :data:`lm_core.objectives.LOSSES` registers for its objective kind
on each batch. Batches come from ``lm_core.data``:

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

import contextlib
import dataclasses
import math
import time

import lightning as L
import torch
from torch import Tensor

from lm_core.checkpoint import save_checkpoint
from lm_core.config import CorruptionConfig, ModelConfig, ObjectiveConfig, OptimConfig
from lm_core.nn.transformer import Transformer
from lm_core.objectives import get_loss
from lm_core.schedule import EMA, wsd_scheduler
from lm_core.text.llada import load_any
from lm_core.train import sharding, throughput
from lm_core.train.sharding import ScaleOptions

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
        seed: base seed of the forward-process noise and of the weights (the Transformer is
            built after ``torch.manual_seed(seed)``, sharded or not).
        scale: sharding (FSDP2 per block, built on the meta device), activation checkpointing,
            ``torch.compile`` (:class:`~lm_core.train.sharding.ScaleOptions`); applied in
            :meth:`configure_model`.
    """

    scale = ScaleOptions()  # defaults for subclasses that build their own network (FlowLM)
    _configured = False

    def __init__(
        self,
        model: ModelConfig | dict,
        objective: ObjectiveConfig | dict,
        optim: OptimConfig | dict,
        *,
        max_steps: int,
        mask_id: int | None = None,
        seed: int = 0,
        scale: ScaleOptions | None = None,
    ) -> None:
        super().__init__()
        self.scale = scale or ScaleOptions()
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
        self.loss_fn = get_loss(kind)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            with torch.device("meta") if self.scale.fsdp else contextlib.nullcontext():
                self.net = Transformer(self.model_cfg)  # on meta: sharded in configure_model
        self._configured = False
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

    def loss_model(self):
        """What the objective's loss function takes as ``model``: the Transformer here."""
        return self.net

    def compute_loss(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict]:
        """Objective on one batch -> (scalar loss in nats per token, detached stats).

        The loss function is the registry's entry for ``objective.kind``
        (:data:`lm_core.objectives.LOSSES`)."""
        return self.loss_fn(self.loss_model(), batch, self.objective, generator, self.mask_id)

    # ----------------------------------------------------------------- model set-up
    def configure_model(self) -> None:
        """Activation checkpointing and ``torch.compile`` per block; under FSDP, shard each
        block and the root, give each rank memory for its shards and fill them
        (:func:`lm_core.train.sharding.materialise`), or broadcast rank 0's ``init_from``
        weights into them. Runs once, after the processes have started."""
        if self._configured:
            return
        self._configured = True
        net, sc = self.net, self.scale
        net.activation_checkpointing = sc.activation_checkpointing
        if sc.compile:
            for block in net.blocks:
                block.compile()
        if not sc.fsdp:
            return
        sharding.shard(net, sharding.data_parallel_mesh(self), bf16=sc.bf16)
        sharding.materialise(net, self.trainer.strategy.root_device, self.seed)
        if sc.init_from is not None:
            state = {}
            if self.trainer.is_global_zero:  # the one full copy, on rank 0's CPU
                state = load_any(sc.init_from)[0].state_dict()
            sharding.load_full_state_dict(net, state)

    # ----------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        g = self._generator(self.global_step, batch_idx, self.global_rank)
        loss, stats = self.compute_loss(batch, g)
        n_tok = batch_tokens(batch)
        now = time.perf_counter()
        if self._t_last is not None and now > self._t_last:
            rate = n_tok * self.trainer.world_size / (now - self._t_last)
            self.log("train/tokens_per_s", rate)
            peak = throughput.peak_flops(self.device, self.trainer.precision)
            if peak is not None:  # model FLOPs per second against the devices' peak
                flops = throughput.train_flops(self.model_cfg, batch, stats.get("masked_frac"))
                mfu = flops * self.trainer.world_size / (now - self._t_last)
                self.log("train/mfu", mfu / (peak * self.trainer.world_size))
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
            **throughput.adamw_options(self.device),
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
        """Write an lm_core checkpoint directory (EMA weights when EMA is on); atomic. Under
        FSDP every rank must call it (the full weights are gathered to rank 0, which writes;
        the others return None)."""
        extra = {"global_step": int(self.global_step), **(extra or {})}
        if tokenizer is not None and not hasattr(tokenizer, "save"):
            # e.g. a LLaDA checkpoint's HuggingFace tokenizer (init_from): keep its files there
            extra["tokenizer"] = "not saved: use the tokenizer of the init_from checkpoint"
            tokenizer = None
        state = None
        if self.scale.fsdp:  # collective: every rank calls export; rank 0 writes
            state = sharding.full_state_dict(self.net)
            if not self.trainer.is_global_zero:
                return None
        weights = contextlib.nullcontext() if self.ema is None else self.ema.swapped(self.net)
        with weights:  # the EMA weights are what gets exported, when there is an EMA
            return save_checkpoint(
                path,
                self.net,
                tokenizer,
                mask_id=self.mask_id,
                objective=self.objective.kind,
                extra=extra,
                state=state,
            )
