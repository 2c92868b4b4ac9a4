"""Training the flow LM: :class:`FlowLM` (a thin LightningModule) and :func:`run_flow` (fit).

``lm-core fit`` with ``objective.kind: flow`` comes here (see :mod:`lm_core.commands.fit`):

1. data and tokenizer as for the masked LM (the encoder checkpoint's tokenizer when
   ``objective.flow.encoder_ckpt`` is set);
2. the codec phase (:func:`lm_core.flow.codec.train_codec`, ``codec_steps`` plain optimiser
   steps, no Trainer), then the codec is frozen; skipped when resuming (the codec is in
   ``last.ckpt``);
3. Lightning trains the denoiser with :func:`~lm_core.flow.denoiser.flow_matching_loss`;
   ``val/loss`` is the same velocity loss on validation batches with fixed noise (not a
   likelihood bound). Exports (``latest``/``best``/``final``) are flow checkpoints
   (:mod:`lm_core.flow.model`).

Optimiser, WSD schedule, EMA, exact resume and logging are :class:`~lm_core.lightning.DiffusionLM`'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from lm_core.config import FlowConfig, ModelConfig, ObjectiveConfig, OptimConfig
from lm_core.flow.codec import LatentCodec, batch_io, train_codec
from lm_core.flow.denoiser import FlowDenoiser, denoiser_config, draw_prompts, flow_matching_loss
from lm_core.flow.model import build_codec, save_flow_checkpoint
from lm_core.lightning import DiffusionLM


def _flow_cfg(objective) -> FlowConfig:
    f = objective.flow if not isinstance(objective, dict) else objective.get("flow", {})
    return f if isinstance(f, FlowConfig) else FlowConfig(**f)


class FlowLM(DiffusionLM):
    """Flow LM training module: a frozen :class:`LatentCodec` and a trainable :class:`FlowDenoiser`.

    Args:
        model: Transformer shape of the denoiser (vocab_size resolved; made time-conditioned).
        objective: ``ObjectiveConfig`` with ``kind="flow"`` and its ``flow`` section.
        codec: the (already trained and frozen) latent codec.
    """

    def __init__(
        self,
        model: ModelConfig,
        objective: ObjectiveConfig,
        optim: OptimConfig,
        *,
        codec: LatentCodec,
        max_steps: int,
        seed: int = 0,
    ) -> None:
        L.LightningModule.__init__(self)
        self.model_cfg = denoiser_config(model)
        self.objective, self.optim, self.flow = objective, optim, _flow_cfg(objective)
        self.max_steps, self.mask_id, self.seed = int(max_steps), None, int(seed)
        self.save_hyperparameters(
            {
                "model": self.model_cfg.to_dict(),
                "objective": dataclasses.asdict(objective),
                "optim": dataclasses.asdict(optim),
                "max_steps": self.max_steps,
                "seed": self.seed,
            }
        )
        self.codec = codec.freeze()
        self.net = FlowDenoiser(self.model_cfg, self.flow.d_latent, self.flow.self_condition)
        self.no_decay = {
            n
            for n, p in self.net.named_parameters()
            if p.dim() < 2 or n.startswith("net.tok_emb") or n in ("given_emb", "null_latent")
        }
        self.ema, self._ema_state = None, None
        self._val_sums, self._t_last = [0.0, 0.0], None

    def train(self, mode: bool = True):
        super().train(mode)
        self.codec.eval()  # frozen: always in eval mode
        return self

    def compute_loss(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict]:
        """Velocity loss (per latent dim, averaged over generated cells) on one batch."""
        ids, valid, attn, cu = batch_io(batch)
        f = self.flow
        with torch.no_grad():
            x = self.codec.encode(ids, attn_mask=attn, cu_seqlens=cu)
            given, x_given = None, None
            if cu is None and f.prompt_prob > 0:
                given, dropped = draw_prompts(valid, f, generator)
                x_given = x
                if self.codec.contextual and bool(given.any()):
                    keys = torch.where(given.any(-1, keepdim=True), given, valid)
                    x_given = self.codec.encode(ids, attn_mask=keys[:, None, None, :])
        loss_mask = valid if given is None else valid & ~given
        if given is not None:  # the null latent is learned through the dropped rows
            null_rows = dropped[:, None, None] & given[..., None]
            x_given = torch.where(null_rows, self.net.null_latent.to(x.dtype), x_given)
        return flow_matching_loss(
            self.net, x, cfg=f, loss_mask=loss_mask, given=given, x_given=x_given,
            attn_mask=attn, cu_seqlens=cu, generator=generator,
        )  # fmt: skip

    def on_validation_epoch_end(self) -> None:
        if self.ema is not None:
            self._ema_ctx.__exit__(None, None, None)
        sums = torch.tensor(self._val_sums, dtype=torch.float64, device=self.device)
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        self.log("val/loss", float(sums[0] / sums[1].clamp(min=1)), prog_bar=True, sync_dist=False)

    def export(self, path, tokenizer=None, extra: dict | None = None):
        """Write a flow checkpoint directory (EMA weights when EMA is on)."""
        extra = {"global_step": int(self.global_step), **(extra or {})}
        if self.ema is None:
            return save_flow_checkpoint(
                path, self.codec, self.net, self.flow, tokenizer, extra=extra
            )
        with self.ema.swapped(self.net):
            return save_flow_checkpoint(
                path, self.codec, self.net, self.flow, tokenizer, extra=extra
            )


def load_encoder(flow: FlowConfig, dm):
    """The frozen encoder Transformer of ``flow.encoder_ckpt`` (its tokenizer set on dm), or None."""
    from lm_core.config import ConfigError
    from lm_core.llada import load_any

    if flow.encoder_ckpt is None:
        return None
    if not Path(flow.encoder_ckpt).is_dir():
        raise ConfigError(f"objective.flow.encoder_ckpt: {flow.encoder_ckpt} does not exist")
    net, tok, meta = load_any(flow.encoder_ckpt)
    if tok is None or meta.get("objective") not in (None, "masked", "sft") or net.cfg.causal:
        raise ConfigError(
            "objective.flow.encoder_ckpt: expected a masked (bidirectional) lm_core checkpoint "
            f"with a tokenizer, got {flow.encoder_ckpt}"
        )
    dm.set_tokenizer(tok)
    return net


def run_flow(cfg, callbacks=()):
    """``lm-core fit`` for ``objective.kind: flow``; returns (trainer, FlowLM)."""
    from lm_core.commands.fit import build_trainer, fit_resumable, resolve_model, resume_path
    from lm_core.config import ConfigError

    out_dir = Path(cfg.out_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, flow = cfg.data, _flow_cfg(cfg.objective)
    encoder = load_encoder(flow, dm)
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer
    row = getattr(dm, "token_budget", None)  # a packed batch is cut into rows of max_doc_len
    if getattr(dm, "packed", False) and getattr(dm, "max_doc_len", None):
        row = dm.max_doc_len
    if row is not None and row > cfg.model.max_seq_len:
        raise ConfigError(
            f"data.max_doc_len / token_budget: rows of {row} tokens are longer than "
            f"model.max_seq_len={cfg.model.max_seq_len}"
        )
    model_cfg = resolve_model(cfg.model, tok, None)
    if encoder is not None and encoder.cfg.max_seq_len < model_cfg.max_seq_len:
        model_cfg = dataclasses.replace(model_cfg, max_seq_len=encoder.cfg.max_seq_len)
    codec = build_codec(flow, tok.vocab_size, encoder)
    ckpt = resume_path(cfg.resume, out_dir)
    if ckpt is None:
        dev = (
            "cuda"
            if cfg.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
            else "cpu"
        )
        st = train_codec(
            codec, dm.train_dataloader(), steps=flow.codec_steps, lr=flow.codec_lr,
            noise=flow.decoder_noise, seed=cfg.seed, device=dev,
        )  # fmt: skip
        codec.cpu()
        print(f"codec: d_latent {flow.d_latent}, round-trip token accuracy {st['acc']:.3f}")
    module = FlowLM(
        model_cfg,
        cfg.objective,
        cfg.optim,
        codec=codec,
        max_steps=cfg.trainer.max_steps,
        seed=cfg.seed,
    )
    trainer = build_trainer(cfg, out_dir, tok, callbacks)
    if trainer.is_global_zero:
        print(f"flow denoiser: {module.net.num_parameters():,} parameters; objective flow")
        if ckpt:
            print(f"resuming from {ckpt}")
    fit_resumable(trainer, module, dm, ckpt, seed=cfg.seed, out_dir=out_dir)
    return trainer, module
