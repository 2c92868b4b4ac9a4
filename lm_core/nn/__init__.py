"""Neural-network building blocks of the block denoiser."""

from lm_core.nn.attention import attention, available_backends
from lm_core.nn.layers import RMSNorm, RotaryEmbedding, SwiGLU
from lm_core.nn.transformer import Transformer

__all__ = ["RMSNorm", "RotaryEmbedding", "SwiGLU", "Transformer", "attention", "available_backends"]
