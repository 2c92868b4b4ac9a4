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

The denoiser (:mod:`lm_core.flow.denoiser`) is lm_core's Transformer with ``time_conditioning``
fed ``inputs_embeds = in_proj([z_t, x_sc])`` (self-conditioning on the previous x-prediction),
reading ``out_proj(hidden)`` as the clean latent. Path ``z_t = (1 - t) x + t eps``
(:mod:`lm_core.corruption`), t logit-normal; loss = velocity MSE written as a 1/t^2-weighted
x-MSE (exactly equal, t clamped at ``t_min``). Prompt cells hold clean latents (flagged by a
learned ``given`` embedding; no loss there); the prompt is replaced by a learned null latent with
probability ``cond_drop`` for classifier-free guidance.

Samplers (:mod:`lm_core.flow.sampling`): Euler ODE and a re-noising SDE (``churn``), N steps =
N NFE (2N forward passes with guidance). Training: :mod:`lm_core.flow.train` (``lm-core fit``
with ``objective.kind: flow``); checkpoints: :mod:`lm_core.flow.model`; ``lm-core generate`` /
``score`` branches: :mod:`lm_core.flow.commands`. ``score`` reports the flow-matching (velocity)
loss on held-out text at fixed t and noise, and the codec's round-trip token accuracy; neither
is a likelihood or a likelihood bound.
"""

from lm_core.flow.codec import LatentCodec, train_codec
from lm_core.flow.denoiser import FlowDenoiser, flow_matching_loss, velocity_weight
from lm_core.flow.model import (
    FlowModel,
    is_flow_checkpoint,
    load_flow_checkpoint,
    save_flow_checkpoint,
)
from lm_core.flow.sampling import EulerODE, ReNoiseSDE, flow_sample, generate_flow

__all__ = [
    "EulerODE",
    "FlowDenoiser",
    "FlowModel",
    "LatentCodec",
    "ReNoiseSDE",
    "flow_matching_loss",
    "flow_sample",
    "generate_flow",
    "is_flow_checkpoint",
    "load_flow_checkpoint",
    "save_flow_checkpoint",
    "train_codec",
    "velocity_weight",
]
