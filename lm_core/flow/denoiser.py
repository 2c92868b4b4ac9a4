"""The flow denoiser (x-prediction) and the flow-matching loss (x-prediction, velocity-weighted).

Time convention (:mod:`lm_core.corruption`): ``z_t = (1 - t) x + t eps``, t = 0 clean, t = 1
noise. The velocity along the path is ``v = dz_t / dt = eps - x``. The network predicts the clean
latent ``x_hat``; its implied velocity is ``v_hat = (z_t - x_hat) / t``. Since
``z_t - x = t (eps - x)``,

    v_hat - v = (x_hat - x) / t,   so   |v_hat - v|^2 = |x_hat - x|^2 / t^2.

:func:`flow_matching_loss` therefore computes the velocity loss as an x-prediction MSE weighted by
``1 / max(t, t_min)^2`` (the clamp bounds the weight near clean data, where v_hat = (z - x_hat) / t
is ill-conditioned; x-prediction with a v-loss as in "Back to Basics" / JiT). The loss is a mean
over generated cells and latent dimensions.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from lm_core.config import FlowConfig, ModelConfig
from lm_core.corruption import flow_interpolate, logit_normal_t
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


def velocity_weight(t: Tensor, t_min: float) -> Tensor:
    """1 / max(t, t_min)^2: the weight turning an x-MSE into the velocity MSE (module docstring)."""
    return t.clamp(min=t_min).pow(-2)


def draw_prompts(valid: Tensor, cfg: FlowConfig, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per row, with prob ``prompt_prob`` a clean prompt prefix of 1 .. max_prompt_frac * length.

    Returns (given bool [B, T], dropped bool [B]: rows whose prompt is replaced by the null latent).
    """
    B, T = valid.shape
    dev = valid.device
    length = valid.sum(-1)
    hi = (length.float() * cfg.max_prompt_frac).floor().clamp(min=0)
    k = (torch.rand(B, generator=g, device=dev) * hi).floor() + 1
    has = (torch.rand(B, generator=g, device=dev) < cfg.prompt_prob) & (hi >= 1) & (length > 1)
    k = torch.where(has, k, torch.zeros_like(k))
    given = torch.arange(T, device=dev)[None] < k[:, None]
    dropped = has & (torch.rand(B, generator=g, device=dev) < cfg.cond_drop)
    return given & valid, dropped


def flow_matching_loss(
    denoiser: FlowDenoiser,
    x: Tensor,
    *,
    cfg: FlowConfig,
    loss_mask: Tensor,
    given: Tensor | None = None,
    x_given: Tensor | None = None,
    attn_mask: Tensor | None = None,
    cu_seqlens: Tensor | None = None,
    t: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict]:
    """Velocity loss of the x-predicting denoiser on clean latents x [B, T, d_latent].

    Args:
        loss_mask: bool [B, T], the generated cells that count (not prompt, not padding).
        given / x_given: bool [B, T] prompt cells and their latents [B, T, d] (clean, or the null
            latent for guidance dropout); these cells hold x_given instead of z_t.
        t: [B] noise levels; drawn logit-normal (cfg.t_mean, cfg.t_std) if None.

    Returns:
        loss (scalar) and stats {"x_mse" (unweighted), "t_mean"}.
    """
    B, dev = x.shape[0], x.device
    if t is None:
        t = logit_normal_t(B, mean=cfg.t_mean, std=cfg.t_std, device=dev, generator=generator)
    eps = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
    z = flow_interpolate(x, eps, t)
    if given is not None:
        z = torch.where(given[..., None], x_given, z)
    kw = dict(given=given, attn_mask=attn_mask, cu_seqlens=cu_seqlens)
    x_sc = None
    if denoiser.self_condition:
        use = torch.rand(B, generator=generator, device=dev) < 0.5
        if bool(use.any()):
            with torch.no_grad():
                x_sc = denoiser(z, t, **kw)
            if given is not None:
                x_sc = torch.where(given[..., None], z, x_sc)
            x_sc = torch.where(use[:, None, None], x_sc, torch.zeros_like(x_sc))
    x_hat = denoiser(z, t, x_sc=x_sc, **kw).float()
    se = (x_hat - x.float()).pow(2).mean(-1)  # [B, T]
    m = loss_mask.float()
    n = m.sum().clamp(min=1)
    loss = (se * velocity_weight(t, cfg.t_min)[:, None] * m).sum() / n
    if not bool(loss_mask.any()):
        loss = loss + 0.0 * x_hat.sum()
    return loss, {"x_mse": ((se * m).sum() / n).detach(), "t_mean": t.mean().detach()}
