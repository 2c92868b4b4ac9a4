"""The flow denoiser network (x-prediction); its loss is :mod:`lm_core.objectives.flow`.

Time convention (:mod:`lm_core.corruption`): ``z_t = (1 - t) x + t eps``, t = 0 clean, t = 1
noise. The network predicts the clean latent ``x_hat`` from ``z_t`` and t.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from lm_core.config import ModelConfig
from lm_core.nn.transformer import Transformer


def denoiser_config(model: ModelConfig) -> ModelConfig:
    """The Transformer shape used inside the flow denoiser: time-conditioned, bidirectional, and
    with a 1-entry token table (inputs are always ``inputs_embeds``; the table is unused)."""
    return dataclasses.replace(
        model, vocab_size=1, time_conditioning=True, causal=False, tie_embeddings=True
    )


class FlowDenoiser(nn.Module):
    """x-predicting denoiser: ``out_proj(Transformer(in_proj([z_t, x_sc]) + given_emb, t))``.

    Args:
        cfg: Transformer shape (``time_conditioning`` must be on; see :func:`denoiser_config`).
        d_latent: latent width.
        self_condition: inputs are ``[z_t, x_sc]`` (x_sc the previous x-prediction, or zeros).
    """

    def __init__(self, cfg: ModelConfig, d_latent: int, self_condition: bool = True) -> None:
        super().__init__()
        if not cfg.time_conditioning:
            raise ValueError("the flow denoiser needs model.time_conditioning=true")
        self.cfg, self.d_latent, self.self_condition = cfg, d_latent, self_condition
        self.net = Transformer(cfg)
        self.in_proj = nn.Linear(d_latent * (2 if self_condition else 1), cfg.d_model)
        self.out_proj = nn.Linear(cfg.d_model, d_latent)
        self.given_emb = nn.Parameter(torch.zeros(cfg.d_model))
        self.null_latent = nn.Parameter(torch.zeros(d_latent))
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - (self.net.tok_emb.weight.numel() if exclude_embeddings else 0)

    def forward(
        self,
        z: Tensor,
        t: Tensor,
        *,
        x_sc: Tensor | None = None,
        given: Tensor | None = None,
        attn_mask: Tensor | None = None,
        cu_seqlens: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """z [B, T, d_latent], t [B] (or scalar), given bool [B, T] -> x_hat [B, T, d_latent]."""
        inp = z
        if self.self_condition:
            inp = torch.cat([z, torch.zeros_like(z) if x_sc is None else x_sc], dim=-1)
        h = self.in_proj(inp)
        if given is not None:
            h = h + given[..., None].to(h.dtype) * self.given_emb
        t = t.reshape(-1).expand(z.shape[0]) if t.numel() == 1 else t
        hidden = self.net(
            inputs_embeds=h,
            t=t,
            attn_mask=attn_mask,
            cu_seqlens=cu_seqlens,
            positions=positions,
            return_hidden=True,
        )
        return self.out_proj(hidden)
