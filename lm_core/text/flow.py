"""Text with a flow LM: :func:`generate_flow` (prompts -> texts) and :func:`flow_score`.

**What ``flow_score`` (``lm-core score`` on a flow checkpoint) reports.** A flow LM defines no tractable token likelihood here
(the decoder is an argmax read-out and the ODE likelihood of latents is not a likelihood of
tokens), so ``score`` reports two diagnostics, neither a likelihood nor a bound on one:

- the **flow-matching loss**: the velocity MSE per latent dimension (``|v_hat - v|^2``, i.e.
  the 1/t^2-weighted x-MSE, t clamped at ``t_min``) averaged over ``n_t`` stratified noise
  levels ``t_j = (j + 1/2) / n_t`` with noise fixed by ``--seed``, on windows of
  ``max_seq_len`` tokens (unconditional), or on the continuation's cells given the prompt;
- the **codec round-trip accuracy**: the share of tokens that ``decode(encode(text))`` returns
  exactly (how much the bottleneck loses; 1.0 is lossless).

Lower flow loss is better; it is comparable only between models sharing the same codec.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lm_core.corruption import flow_interpolate
from lm_core.objectives.flow import velocity_weight
from lm_core.solvers.flow import flow_sample, make_sampler


@torch.no_grad()
def flow_score(model, ids: list[int], *, n_prompt: int = 0, n_t: int = 16, seed: int = 0) -> dict:
    """Flow loss (mean over t_j, cells, dims) of ``ids`` (its first n_prompt cells given).

    Returns {"flow_loss", "x_mse", "codec_acc", "n_tokens"}; ``n_tokens`` counts scored cells.
    """
    den, codec, flow = model.denoiser, model.codec, model.flow
    dev = next(model.parameters()).device
    L = den.cfg.max_seq_len
    if n_prompt and len(ids) > L:
        raise ValueError(f"prompt + continuation = {len(ids)} tokens exceeds max_seq_len={L}")
    g = torch.Generator(device=dev).manual_seed(seed)
    t = (torch.arange(n_t, device=dev, dtype=torch.float32) + 0.5) / n_t
    w = velocity_weight(t, flow.t_min)[:, None]
    tot = {"flow_loss": 0.0, "x_mse": 0.0, "hit": 0, "n": 0}
    for start in range(0, len(ids), L):
        win = torch.tensor(ids[start : start + L], device=dev)[None]
        x = codec.encode(win)
        tot["hit"] += int((codec.decode(x) == win).sum())
        given = torch.zeros_like(win, dtype=torch.bool)
        given[:, :n_prompt] = True
        if n_prompt and codec.contextual:
            x_p = codec.encode(win, attn_mask=given[:, None, None, :])
            x = torch.where(given[..., None], x_p, x)
        xs, gv = x.expand(n_t, -1, -1), given.expand(n_t, -1)
        eps = torch.randn(xs.shape, generator=g, device=dev)
        z = torch.where(gv[..., None], xs, flow_interpolate(xs, eps, t))
        se = (den(z, t, given=gv).float() - xs).pow(2).mean(-1)[:, ~given[0]]  # [n_t, cells]
        tot["flow_loss"] += float((se * w).mean(0).sum())
        tot["x_mse"] += float(se.mean(0).sum())
        tot["n"] += se.shape[1]
    n = max(tot["n"], 1)
    return {
        "flow_loss": tot["flow_loss"] / n,
        "x_mse": tot["x_mse"] / n,
        "codec_acc": tot["hit"] / max(len(ids), 1),
        "n_tokens": tot["n"],
    }


@dataclass
class FlowGenerationStats:
    """NFE = sampler steps; forward_passes = NFE x 2 with guidance; tokens generated per row."""

    nfe: int
    forward_passes: int
    tokens: int
    rows: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens * self.rows / max(self.seconds, 1e-9)


def _canvas(tokenizer, prompts: Sequence[str], gen_length: int, device):
    """Left-padded prompts + gen_length cells: ids, valid, is_prompt [B, T], positions [B, T]."""
    ids = [tokenizer.encode(p) for p in prompts]
    P = max(len(i) for i in ids)
    B, T = len(ids), P + gen_length
    canvas = torch.full((B, T), tokenizer.pad_id, dtype=torch.long)
    is_prompt = torch.zeros(B, T, dtype=torch.bool)
    for b, row in enumerate(ids):
        if row:
            canvas[b, P - len(row) : P] = torch.tensor(row)
            is_prompt[b, P - len(row) : P] = True
    valid = is_prompt.clone()
    valid[:, P:] = True
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    return canvas.to(device), valid.to(device), is_prompt.to(device), positions.to(device), P


@torch.no_grad()
def generate_flow(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    gen_length: int = 64,
    steps: int = 32,
    sampler: str = "euler",
    churn: float = 0.5,
    cfg_scale: float = 0.0,
    seed: int = 0,
) -> tuple[list[str], FlowGenerationStats]:
    """Generate ``gen_length`` tokens after each prompt with a :class:`FlowModel`.

    Prompt latents come from the frozen encoder seeing the prompt only (as in training). The
    final latents are decoded by argmax and each text is cut at its first EOS. One generator
    (``seed``) serves the whole batch.
    """
    dev = next(model.parameters()).device
    den, codec = model.denoiser, model.codec
    policy = make_sampler(sampler, churn)
    ids, valid, is_prompt, pos, P = _canvas(tokenizer, prompts, gen_length, dev)
    B, T = ids.shape
    if T > den.cfg.max_seq_len:
        raise ValueError(
            f"prompt + gen_length = {T} tokens exceeds max_seq_len={den.cfg.max_seq_len}"
        )
    t0 = time.perf_counter()
    has = is_prompt.any(-1, keepdim=True)
    enc_keys = torch.where(has, is_prompt, valid)[:, None, None, :]
    x_given = codec.encode(ids, attn_mask=enc_keys, positions=pos)
    attn = valid[:, None, None, :]
    null = den.null_latent.expand_as(x_given)

    def predict(z, t, x_sc):
        x_c = den(z, t, x_sc=x_sc, given=is_prompt, attn_mask=attn, positions=pos)
        if cfg_scale == 0.0:
            return x_c
        z_u = torch.where(is_prompt[..., None], null, z)
        x_u = den(z_u, t, x_sc=x_sc, given=is_prompt, attn_mask=attn, positions=pos)
        return x_c + cfg_scale * (x_c - x_u)

    g = torch.Generator(device=dev).manual_seed(seed)
    z0, nfe = flow_sample(
        predict, (B, T, den.d_latent), steps=steps, sampler=policy,
        given=is_prompt, x_given=x_given, generator=g, device=dev,
    )  # fmt: skip
    out = codec.decode(z0)[:, P:].tolist()
    texts = []
    for row in out:
        if tokenizer.eos_id in row:
            row = row[: row.index(tokenizer.eos_id)]
        texts.append(tokenizer.decode(row))
    stats = FlowGenerationStats(
        nfe=nfe,
        forward_passes=nfe * (2 if cfg_scale else 1),
        tokens=gen_length,
        rows=B,
        seconds=time.perf_counter() - t0,
    )
    return texts, stats
