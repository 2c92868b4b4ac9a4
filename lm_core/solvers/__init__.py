"""Samplers: one loop (:func:`denoise`) and commit policies with a ``step()``; text generation
(:func:`generate`) on top of the loop."""

from lm_core.sampling.generate import GenerationResult, GenerationStats, generate
from lm_core.sampling.loop import SampleStats, denoise, num_transfer_tokens
from lm_core.sampling.policies import (
    SAMPLERS,
    DistributionOrder,
    LowConfidence,
    RandomRemasking,
    Threshold,
    gumbel_sample,
    make_policy,
)

__all__ = [
    "DistributionOrder",
    "SAMPLERS",
    "GenerationResult",
    "GenerationStats",
    "LowConfidence",
    "RandomRemasking",
    "SampleStats",
    "Threshold",
    "denoise",
    "generate",
    "gumbel_sample",
    "make_policy",
    "num_transfer_tokens",
]
