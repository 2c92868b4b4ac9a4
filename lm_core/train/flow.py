"""Training the flow LM: :class:`FlowLM` (a thin LightningModule) and :func:`build_flow_module`.

:func:`lm_core.train.run.run` with ``objective.kind: flow`` builds its module here:

1. data and tokenizer as for the masked LM (the encoder checkpoint's tokenizer when
   ``objective.flow.encoder_ckpt`` is set);
2. the codec stage (:func:`lm_core.train.codec.train_codec`: ``codec_steps`` AdamW steps of
   :class:`~lm_core.train.codec.CodecStage` in a Trainer of their own), then the codec is
   frozen; skipped when resuming (the codec is in ``last.ckpt``);
3. Lightning trains the denoiser with :func:`~lm_core.objectives.flow.flow_objective`;
   ``val/loss`` is the same velocity loss on validation batches with fixed noise (not a
   likelihood bound). Exports (``latest``/``best``/``final``) are flow checkpoints
   (:mod:`lm_core.flow.model`).

Optimiser, WSD schedule, EMA, exact resume and logging are
:class:`~lm_core.train.module.DiffusionLM`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import lightning as L
import torch

from lm_core.config import ConfigError, FlowConfig, ModelConfig, ObjectiveConfig, OptimConfig
from lm_core.flow.codec import LatentCodec
from lm_core.flow.denoiser import FlowDenoiser, denoiser_config
from lm_core.flow.model import FlowModel, build_codec, save_flow_checkpoint
from lm_core.objectives import get_loss
from lm_core.text.llada import load_any
from lm_core.train.codec import train_codec
from lm_core.train.module import DiffusionLM
from lm_core.train.setup import resolve_model, resume_path


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
        self.loss_fn = get_loss("flow")
        self.ema, self._ema_state = None, None
        self._val_sums, self._t_last = [0.0, 0.0], None

    def train(self, mode: bool = True):
        super().train(mode)
        self.codec.eval()  # frozen: always in eval mode
        return self

    def loss_model(self) -> FlowModel:
        """The flow objective's ``model``: this module's codec and denoiser (no copies)."""
        return FlowModel(self.codec, self.net, self.flow)

    def on_validation_epoch_end(self) -> None:
        if self.ema is not None:
            self._ema_ctx.__exit__(None, None, None)
        sums = torch.tensor(self._val_sums, dtype=torch.float64, device=self.device)
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        self.log("val/loss", float(sums[0] / sums[1].clamp(min=1)), prog_bar=True, sync_dist=False)

    def export(self, path, tokenizer=None, extra: dict | None = None):
        """Write a flow checkpoint directory (EMA weights when EMA is on)."""
        extra = {"global_step": int(self.global_step), **(extra or {})}
        weights = contextlib.nullcontext() if self.ema is None else self.ema.swapped(self.net)
        with weights:
            return save_flow_checkpoint(
                path, self.codec, self.net, self.flow, tokenizer, extra=extra
            )


def load_encoder(flow: FlowConfig, dm):
    """The frozen encoder Transformer of ``flow.encoder_ckpt`` (its tokenizer set on dm), or None."""
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


def build_flow_module(cfg, out_dir: Path) -> tuple[FlowLM, str | None, list[str]]:
    """Data and tokenizer, the codec stage (skipped when resuming: the codec is in
    ``last.ckpt``), then :class:`FlowLM`. Returns (module, resume checkpoint, lines to print)."""
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
    notes = [f"flow denoiser: {module.net.num_parameters():,} parameters; objective flow"]
    return module, ckpt, notes
