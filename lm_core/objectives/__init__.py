"""Training objectives: one module per objective, and the registry the training module reads.

Every registry entry is a loss function ``fn(model, batch, cfg, generator, mask_id) ->
(loss, stats)``: ``model`` the network being trained, ``batch`` a dict from :mod:`lm_core.data`,
``cfg`` the :class:`~lm_core.config.ObjectiveConfig`, ``generator`` the forward-process noise,
``mask_id`` the tokenizer's MASK id (None where the objective has no MASK: ``ar``, ``flow``);
``loss`` is a scalar and ``stats`` holds detached scalars worth logging.

- ``masked``, ``sft``: the masked-diffusion ELBO (LLaDA) and its SFT form (:mod:`.masked`);
- ``ar``: next-token cross-entropy of the autoregressive baseline (:mod:`.ar`);
- ``dmax``: DMax on-policy self-correction (:mod:`.dmax`);
- ``flow``: flow matching in a frozen codec's latents (:mod:`.flow`).
"""

from lm_core.objectives.ar import ar_objective, causal_lm_loss
from lm_core.objectives.dmax import dmax_loss, dmax_objective
from lm_core.objectives.flow import flow_matching_loss, flow_objective
from lm_core.objectives.masked import (
    masked_diffusion_loss,
    masked_objective,
    sft_loss,
    sft_objective,
)

LOSSES = {
    "masked": masked_objective,
    "sft": sft_objective,
    "ar": ar_objective,
    "dmax": dmax_objective,
    "flow": flow_objective,
}
"""Objective kind (``ObjectiveConfig.kind``) -> loss function."""


def get_loss(kind: str):
    """The registry's loss function of ``kind``; ValueError naming the kinds otherwise."""
    if kind not in LOSSES:
        raise ValueError(f"objective.kind: expected one of {sorted(LOSSES)}, got {kind!r}")
    return LOSSES[kind]


__all__ = [
    "LOSSES",
    "causal_lm_loss",
    "dmax_loss",
    "flow_matching_loss",
    "get_loss",
    "masked_diffusion_loss",
    "sft_loss",
]
