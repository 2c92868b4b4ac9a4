"""Small shared builders of the lm_core tests: the tiny flow config's path and a flow denoiser."""

from pathlib import Path

from lm_core.config import ModelConfig
from lm_core.flow import FlowDenoiser
from lm_core.flow.denoiser import denoiser_config

TINY_FLOW = str(Path(__file__).resolve().parents[2] / "configs" / "lm" / "tiny-flow.yaml")


def tiny_denoiser(d_latent=8, d_model=32, n_layers=1, self_condition=True, max_seq_len=32):
    """A flow denoiser over a 10-token vocabulary (random weights, seeded by the caller)."""
    cfg = denoiser_config(ModelConfig(vocab_size=10, d_model=d_model, n_layers=n_layers, n_heads=2,
                                      max_seq_len=max_seq_len))  # fmt: skip
    return FlowDenoiser(cfg, d_latent, self_condition)
