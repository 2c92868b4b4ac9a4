"""lm_core: masked (and flow) diffusion language models on one bidirectional block denoiser.

Time convention, used everywhere in this project (see :mod:`lm_core.corruption`):
``t = 0`` is clean data, ``t = 1`` is fully masked / pure noise.
"""

from lm_core.config import ModelConfig
from lm_core.nn.transformer import Transformer

__all__ = ["ModelConfig", "Transformer"]
__version__ = "0.1.0"
