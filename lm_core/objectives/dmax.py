"""DMax's objective: on-policy self-correction training of a masked diffusion LM (kind ``dmax``).

**Training** (:func:`dmax_loss`, ``objective.kind: dmax``). Each sequence (a padded row, or a
packed document) is masked as usual, x_t = mask(x_0, t). A share ``share`` of the sequences is
then turned into *self-correction* sequences: a no-grad pass of the model on x_t proposes the
argmax (never MASK) at every masked cell and those proposals replace the masks (the model's own
predictions, right or wrong; no MASK is left in such a sequence). The loss of a self-correction
sequence is the plain cross-entropy at *every* maskable cell (response cells for SFT batches,
all real tokens for plain text) against the clean tokens, so the model learns both to keep
right tokens and to revise wrong ones. The other sequences keep the masked-diffusion ELBO term
(CE / p on masked cells). Both parts are summed and normalised like
:func:`lm_core.objectives.masked.masked_diffusion_loss` (``tokens`` or per-``answer``); the
self-correction part is a denoising loss, not an ELBO term, so ``val/ppl_bound`` of a dmax run
is not a likelihood bound (score it with a masked objective).

Soft parallel decoding is :mod:`lm_core.solvers.soft` (text level:
:func:`lm_core.text.generate.dmax_generate`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_core.config import ObjectiveConfig
from lm_core.corruption import mask_probability, mask_tokens, sample_t
from lm_core.nn.attention import document_ids
from lm_core.objectives.masked import batch_masks, normalised


def _units(input_ids: Tensor, cu_seqlens: Tensor | None) -> tuple[Tensor, int]:
    """Sequence id of each cell [B, T] (rows, or packed documents) and the number of sequences."""
    B, T = input_ids.shape
    if cu_seqlens is None:
        return torch.arange(B, device=input_ids.device)[:, None].expand(B, T), B
    n = cu_seqlens.numel() - 1
    return document_ids(cu_seqlens.to(input_ids.device), T)[None], n


@torch.no_grad()
def self_correction_inputs(
    model, x_t: Tensor, masked: Tensor, replace: Tensor, *, mask_id: int, **model_kw
) -> Tensor:
    """x_t with the masked cells in ``replace`` (bool [B, T]) set to the model's argmax.

    A no-grad pass on x_t; the MASK id is never proposed. Returns [B, T] long.
    """
    logits = model(x_t, **model_kw).float()
    if mask_id < logits.shape[-1]:
        logits[..., mask_id] = float("-inf")
    return torch.where(masked & replace, logits.argmax(-1), x_t)


def dmax_loss(
    model,
    input_ids: Tensor,
    *,
    mask_id: int,
    share: float = 0.5,
    maskable: Tensor | None = None,
    cu_seqlens: Tensor | None = None,
    attn_mask: Tensor | None = None,
    eps: float = 1e-3,
    stratified: bool = False,
    normalise: str = "tokens",
    mask_ratio: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict]:
    """On-policy self-correction loss (see the module docstring).

    Args:
        input_ids: [B, T] clean tokens (B = 1 and ``cu_seqlens`` for a packed batch).
        share: probability that a sequence (row or packed document) is a self-correction one.
        maskable: bool [B, T] cells that may be masked and are scored (SFT: the response).
        normalise: ``tokens`` (sum over the maskable count) or ``answer`` (per-row mean, then
            mean over rows), as in :func:`lm_core.objectives.masked.masked_diffusion_loss`.
        mask_ratio: mask every maskable cell with this fixed probability in every sequence
            (the DMax reference trains at 0.75) instead of p = t, t ~ U(eps, 1) per sequence.

    Returns:
        loss and stats {"masked_frac", "ce_masked", "sc_frac", "sc_wrong_frac", "ce_sc"}.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share: expected a number in [0, 1], got {share}")
    if maskable is None:
        maskable = torch.ones_like(input_ids, dtype=torch.bool)
    if mask_ratio is not None and not 0.0 < mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio: expected a number in (0, 1], got {mask_ratio}")
    unit, n_units = _units(input_ids, cu_seqlens)
    if mask_ratio is None:
        t_unit = sample_t(
            n_units, stratified=stratified, device=input_ids.device, generator=generator
        )
        p = mask_probability(t_unit[unit], eps).expand_as(input_ids)
    else:
        p = torch.full(input_ids.shape, float(mask_ratio), device=input_ids.device)
    x_t, masked = mask_tokens(input_ids, p, mask_id, maskable=maskable, generator=generator)
    u = torch.rand(n_units, device=input_ids.device, generator=generator)
    sc = (u < share)[unit].expand_as(input_ids)  # cells of self-correction sequences
    kw = {"cu_seqlens": cu_seqlens, "attn_mask": attn_mask}
    x_in = x_t
    if bool((sc & masked).any()):
        x_in = self_correction_inputs(model, x_t, masked, sc, mask_id=mask_id, **kw)
    logits = model(x_in, **kw)
    ce = F.cross_entropy(logits.flatten(0, 1).float(), input_ids.flatten(), reduction="none")
    ce = ce.view_as(p)
    plain = masked & ~sc
    scored_sc = sc & maskable
    weighted = torch.where(plain, ce / p.float(), torch.zeros_like(ce))
    weighted = torch.where(scored_sc, ce, weighted)
    loss = normalised(weighted, maskable, normalise)
    replaced = masked & sc
    n = lambda m: m.sum().clamp(min=1)  # noqa: E731
    stats = {
        "masked_frac": (masked.sum() / n(maskable)).detach(),
        "ce_masked": ((ce * plain).sum() / n(plain)).detach(),
        "sc_frac": (scored_sc.sum() / n(maskable)).detach(),
        "sc_wrong_frac": (((x_in != input_ids) & replaced).sum() / n(replaced)).detach(),
        "ce_sc": ((ce * scored_sc).sum() / n(scored_sc)).detach(),
    }
    return loss, stats


def dmax_objective(
    model, batch: dict, cfg: ObjectiveConfig, generator=None, mask_id: int | None = None
) -> tuple[Tensor, dict]:
    """Registry entry ``dmax``: :func:`dmax_loss` on plain text (every real token maskable) or on
    SFT batches (``maskable`` = the response, normalised per answer)."""
    cu, valid, attn_mask = batch_masks(batch)
    c, sft = cfg.corruption, "maskable" in batch
    return dmax_loss(
        model, batch["input_ids"], mask_id=mask_id, share=cfg.dmax_share,
        maskable=batch["maskable"] if sft else valid, cu_seqlens=None if sft else cu,
        attn_mask=None if sft else attn_mask, eps=c.eps, stratified=c.stratified,
        normalise="answer" if sft else "tokens", mask_ratio=cfg.dmax_mask_ratio,
        generator=generator,
    )  # fmt: skip
