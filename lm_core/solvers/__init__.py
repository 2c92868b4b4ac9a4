"""Solvers: the sampler loop (:func:`denoise`) and commit policies with a ``step()``, its cached
block calls (:mod:`.cache`: prefix and dual KV cache), DMax's soft decoding (:mod:`.soft`) and
the flow ODE/SDE solvers (:mod:`.flow`).

A solver sees only a callable model and its extra inputs: no tokenizer, no checkpoint (text
generation on top of them is :mod:`lm_core.text`).
"""

from lm_core.solvers.cache import CACHE_MODES, BlockForward
from lm_core.solvers.loop import SampleStats, denoise, num_transfer_tokens
from lm_core.solvers.policies import (
    SAMPLERS,
    DistributionOrder,
    LowConfidence,
    RandomRemasking,
    Threshold,
    gumbel_sample,
    make_policy,
)

__all__ = [
    "BlockForward",
    "CACHE_MODES",
    "DistributionOrder",
    "SAMPLERS",
    "LowConfidence",
    "RandomRemasking",
    "SampleStats",
    "Threshold",
    "denoise",
    "gumbel_sample",
    "make_policy",
    "num_transfer_tokens",
]
