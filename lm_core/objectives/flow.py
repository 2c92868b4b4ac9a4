"""The flow-matching objective (kind ``flow``): x-prediction, velocity-weighted.

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

import torch
from torch import Tensor

from lm_core.config import FlowConfig, ObjectiveConfig
from lm_core.corruption import flow_interpolate, logit_normal_t
from lm_core.flow.codec import batch_io


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
    denoiser,
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


def flow_objective(
    model, batch: dict, cfg: ObjectiveConfig, generator=None, mask_id: int | None = None
) -> tuple[Tensor, dict]:
    """Registry entry ``flow``: velocity loss (per latent dim, averaged over generated cells).

    ``model`` holds a frozen ``codec`` (:class:`lm_core.flow.codec.LatentCodec`) and the trainable
    ``denoiser`` (:class:`lm_core.flow.denoiser.FlowDenoiser`), e.g. a
    :class:`lm_core.flow.model.FlowModel`. Tokens are encoded without gradient; with
    ``cfg.flow.prompt_prob`` a clean prompt prefix is drawn per row (:func:`draw_prompts`), its
    latents taken from the encoder seeing the prompt only (contextual codec), and replaced by the
    learned null latent for guidance dropout. ``mask_id`` is not used.
    """
    codec, den, f = model.codec, model.denoiser, cfg.flow
    ids, valid, attn, cu = batch_io(batch)
    with torch.no_grad():
        x = codec.encode(ids, attn_mask=attn, cu_seqlens=cu)
        given, x_given = None, None
        if cu is None and f.prompt_prob > 0:
            given, dropped = draw_prompts(valid, f, generator)
            x_given = x
            if codec.contextual and bool(given.any()):
                keys = torch.where(given.any(-1, keepdim=True), given, valid)
                x_given = codec.encode(ids, attn_mask=keys[:, None, None, :])
    loss_mask = valid if given is None else valid & ~given
    if given is not None:  # the null latent is learned through the dropped rows
        null_rows = dropped[:, None, None] & given[..., None]
        x_given = torch.where(null_rows, den.null_latent.to(x.dtype), x_given)
    return flow_matching_loss(
        den, x, cfg=f, loss_mask=loss_mask, given=given, x_given=x_given,
        attn_mask=attn, cu_seqlens=cu, generator=generator,
    )  # fmt: skip
