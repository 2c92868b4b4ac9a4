"""Flow LM (ELF-style): flow matching in a frozen encoder's normalised, low-dimensional latents.

**Design.** Text -> frozen encoder -> per-dimension normalisation -> linear bottleneck to
``d_latent`` -> standardised latents x (:mod:`lm_core.flow.codec`). The encoder is lm_core's own
trained masked DLM (final hidden states, no masking, with the encoder's own input embedding of
each token appended by default: ``objective.flow.encoder_features``) when
``objective.flow.encoder_ckpt`` is given; otherwise a token-embedding table trained here jointly
with the bottleneck and decoder in a short codec phase, then frozen (non-contextual latents:
cheaper, and the only choice without a trained DLM). ELF's recipe is the same shape: a frozen
encoder's output, normalised, through a low-dimensional bottleneck, with a decoder to tokens used
only at the end.

The denoiser (:mod:`lm_core.flow.denoiser`; its loss :mod:`lm_core.objectives.flow`) is lm_core's Transformer with ``time_conditioning``
fed ``inputs_embeds = in_proj([z_t, x_sc])`` (self-conditioning on the previous x-prediction),
reading ``out_proj(hidden)`` as the clean latent. Path ``z_t = (1 - t) x + t eps``
(:mod:`lm_core.corruption`), t logit-normal; loss = velocity MSE written as a 1/t^2-weighted
x-MSE (exactly equal, t clamped at ``t_min``). Prompt cells hold clean latents (flagged by a
learned ``given`` embedding; no loss there); the prompt is replaced by a learned null latent with
probability ``cond_drop`` for classifier-free guidance.

Solvers (:mod:`lm_core.solvers.flow`): Euler ODE and a re-noising SDE (``churn``), N steps =
N NFE (2N forward passes with guidance); text generation and scoring: :mod:`lm_core.text.flow`.
Training: :mod:`lm_core.train.flow` (``lm-core fit`` with ``objective.kind: flow``; the codec
stage :mod:`lm_core.train.codec`); checkpoints: :mod:`lm_core.flow.model`. ``score`` reports
the flow-matching (velocity) loss on held-out text at fixed t and noise, and the codec's
round-trip token accuracy; neither is a likelihood or a likelihood bound.
"""

from lm_core.flow.codec import LatentCodec
from lm_core.flow.denoiser import FlowDenoiser
from lm_core.flow.model import (
    FlowModel,
    is_flow_checkpoint,
    load_flow_checkpoint,
    save_flow_checkpoint,
)

__all__ = [
    "FlowDenoiser",
    "FlowModel",
    "LatentCodec",
    "is_flow_checkpoint",
    "load_flow_checkpoint",
    "save_flow_checkpoint",
]
