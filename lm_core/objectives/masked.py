"""The masked-diffusion objective (LLaDA's ELBO) and its SFT form.

Losses return ``(loss, stats)`` where ``stats`` holds detached scalars worth logging.
:func:`masked_objective` and :func:`sft_objective` are the registry entries (kinds ``masked`` and
``sft``, see :mod:`lm_core.objectives`): a batch dict in, the configured loss out.
Time convention: see :mod:`lm_core.corruption`.

A block-causal model (``model.cfg.block_causal`` = N > 0) is trained as BD3-LM trains it: the
noisy and the clean sequence go in side by side, ``[x_t, x_0]`` [B, 2T], with the
:func:`~lm_core.nn.masks.dual_stream_mask` (blocks of N positions per document), so a noisy
block is denoised given the clean blocks before it, which is what it sees when sampling; the
mask is built once per batch (a FlexAttention BlockMask on CUDA,
:func:`~lm_core.nn.flex.dual_stream_spec`) and the loss is read off the noisy half.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_core.config import ObjectiveConfig
from lm_core.corruption import mask_probability, mask_tokens, sample_t
from lm_core.nn.flex import dual_stream_spec
from lm_core.nn.masks import document_ids
from lm_core.nn.transformer import Transformer


def per_row_t(input_ids: Tensor, cu_seqlens: Tensor | None, stratified: bool, generator):
    """A noise level per sequence: [B, 1] for a padded batch, [1, T] (one t per document) if packed."""
    B, T = input_ids.shape
    if cu_seqlens is None:
        return sample_t(B, stratified=stratified, device=input_ids.device, generator=generator)[
            :, None
        ]
    n_docs = cu_seqlens.numel() - 1
    t_doc = sample_t(n_docs, stratified=stratified, device=input_ids.device, generator=generator)
    return t_doc[document_ids(cu_seqlens.to(input_ids.device), T)][None]


def normalised(weighted: Tensor, maskable: Tensor, normalise: str) -> Tensor:
    """Sum of per-cell losses ``weighted`` [B, T] over ``maskable`` cells (bool [B, T]) divided
    by their count (``tokens``), or each row's sum by its own count, then the mean over rows
    (``answer``)."""
    if normalise == "answer":
        return (weighted.sum(-1) / maskable.sum(-1).clamp(min=1)).mean()
    if normalise == "tokens":
        return weighted.sum() / maskable.sum().clamp(min=1)
    raise ValueError(f"normalise: expected 'tokens' or 'answer', got {normalise!r}")


def masked_diffusion_loss(
    model,
    input_ids: Tensor,
    *,
    mask_id: int,
    maskable: Tensor | None = None,
    cu_seqlens: Tensor | None = None,
    attn_mask: Tensor | None = None,
    eps: float = 1e-3,
    stratified: bool = False,
    normalise: str = "tokens",
    t: Tensor | None = None,
    generator: torch.Generator | None = None,
    ce_chunk: int = 0,
) -> tuple[Tensor, dict]:
    """Masked-diffusion ELBO (LLaDA): sum over masked tokens of CE / p, over the token count.

    A :class:`~lm_core.nn.transformer.Transformer` projects only the masked positions' hidden
    states to the vocabulary (``logits_at``), in chunks of ``ce_chunk`` positions whose logits
    are recomputed in backward when ``ce_chunk`` > 0; any other callable ``model(x_t, **kw)``
    returns logits [B, T, V] for every position.

    Args:
        input_ids: [B, T] clean tokens (B = 1 and ``cu_seqlens`` for a packed batch).
        maskable: bool [B, T]; which tokens may be masked and count in the denominator
            (padding and SFT prompts are excluded). Default: all.
        normalise: ``tokens`` divides by the number of maskable tokens (the pre-training ELBO);
            ``answer`` divides each sequence's sum by its own maskable length, then averages over
            sequences (LLaDA's SFT normalisation).
        t: optional noise levels broadcastable to [B, T]; drawn per sequence/document if None.

    Returns:
        loss (scalar) and stats {"masked_frac", "ce_masked"}.
    """
    if maskable is None:
        maskable = torch.ones_like(input_ids, dtype=torch.bool)
    if t is None:
        t = per_row_t(input_ids, cu_seqlens, stratified, generator)
    p = mask_probability(t, eps).expand_as(input_ids)
    x_t, masked = mask_tokens(input_ids, p, mask_id, maskable=maskable, generator=generator)
    ce = torch.zeros_like(p, dtype=torch.float32)
    if getattr(getattr(model, "cfg", None), "block_causal", 0):  # BD3-LM's two streams
        out = block_causal_logits(model, x_t, input_ids, cu_seqlens, attn_mask)
        if masked.any():
            ce[masked] = F.cross_entropy(out[masked].float(), input_ids[masked], reduction="none")
    elif isinstance(model, Transformer):  # logits at the masked positions only
        out = model(
            x_t,
            cu_seqlens=cu_seqlens,
            attn_mask=attn_mask,
            logits_at=masked,
            targets=input_ids[masked],
            ce_chunk=ce_chunk,
        )
        ce = ce.masked_scatter(masked, out)
    else:
        out = model(x_t, cu_seqlens=cu_seqlens, attn_mask=attn_mask)
        if masked.any():
            ce[masked] = F.cross_entropy(out[masked].float(), input_ids[masked], reduction="none")
    loss = normalised(ce / p.float(), maskable, normalise)
    if not masked.any():  # nothing masked (tiny batch, small t): keep the graph for backward/DDP
        loss = loss + 0.0 * out.sum()
    n_masked = masked.sum().clamp(min=1)
    stats = {
        "masked_frac": (masked.sum() / maskable.sum().clamp(min=1)).detach(),
        "ce_masked": (ce.sum() / n_masked).detach(),
    }
    return loss, stats


def block_causal_logits(model, x_t, x_0, cu_seqlens, attn_mask) -> Tensor:
    """Logits [B, T, V] of the noisy half of ``[x_t, x_0]`` under the dual-stream mask.

    x_t, x_0: [B, T]; ``attn_mask`` here is only a key-validity mask [B, 1, 1, T] (padded
    batches) or None; ``cu_seqlens`` the packed documents (positions restart in each)."""
    B, T = x_0.shape
    positions = model.default_positions(B, T, x_0.device, cu_seqlens)
    docs = None
    if cu_seqlens is not None:
        docs = document_ids(cu_seqlens.to(x_0.device), T)[None].expand(B, T)
    valid = None if attn_mask is None else attn_mask.reshape(B, -1)[:, -T:].bool()
    mask = dual_stream_spec(positions // model.cfg.block_causal, docs, valid)
    both = model.tok_emb(torch.cat([x_t, x_0], dim=1))  # 2T cells, positions within T
    return model(
        inputs_embeds=both, positions=torch.cat([positions, positions], dim=1), attn_mask=mask
    )[:, :T]


def sft_loss(
    model,
    batch: dict[str, Tensor],
    mask_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict]:
    """LLaDA's SFT loss on an :func:`lm_core.data.sft.sft_batch`: masked-diffusion ELBO over the
    maskable part (``input_ids`` [B, T], ``maskable`` bool [B, T]), normalised per answer.
    Returns (loss, stats)."""
    return masked_diffusion_loss(
        model,
        batch["input_ids"],
        mask_id=mask_id,
        maskable=batch["maskable"],
        eps=eps,
        normalise="answer",
        generator=generator,
    )


def batch_masks(batch: dict) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """(cu_seqlens [N + 1] or None, valid bool [B, T] or None, attn_mask [B, 1, 1, T] or None)."""
    cu, valid = batch.get("cu_seqlens"), batch.get("valid")
    return cu, valid, None if valid is None else valid[:, None, None, :]


def masked_objective(
    model, batch: dict, cfg: ObjectiveConfig, generator=None, mask_id: int | None = None
) -> tuple[Tensor, dict]:
    """Registry entry ``masked``: the ELBO on a packed or padded batch (``valid`` = maskable)."""
    cu, valid, attn_mask = batch_masks(batch)
    c = cfg.corruption
    return masked_diffusion_loss(
        model,
        batch["input_ids"],
        mask_id=mask_id,
        maskable=valid,
        cu_seqlens=cu,
        attn_mask=attn_mask,
        eps=c.eps,
        stratified=c.stratified,
        generator=generator,
        ce_chunk=cfg.ce_chunk,
    )


def sft_objective(
    model, batch: dict, cfg: ObjectiveConfig, generator=None, mask_id: int | None = None
) -> tuple[Tensor, dict]:
    """Registry entry ``sft``: the ELBO on an SFT batch's ``maskable`` cells, per answer."""
    if "maskable" not in batch:
        raise ValueError(
            "objective.kind=sft needs SFT batches with 'maskable' "
            "(data.class_path: lm_core.data.SFTDataModule)"
        )
    c = cfg.corruption
    return masked_diffusion_loss(
        model,
        batch["input_ids"],
        mask_id=mask_id,
        maskable=batch["maskable"],
        eps=c.eps,
        stratified=c.stratified,
        normalise="answer",
        generator=generator,
        ce_chunk=cfg.ce_chunk,
    )
