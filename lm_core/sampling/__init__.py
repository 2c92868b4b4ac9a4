"""Samplers: one loop (:func:`denoise`) and commit policies with a ``step()``."""

from lm_core.sampling.loop import SampleStats, denoise, num_transfer_tokens
from lm_core.sampling.policies import LowConfidence, RandomRemasking, Threshold, gumbel_sample

__all__ = [
    "LowConfidence",
    "RandomRemasking",
    "SampleStats",
    "Threshold",
    "denoise",
    "gumbel_sample",
    "num_transfer_tokens",
]
