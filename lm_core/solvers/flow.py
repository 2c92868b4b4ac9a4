"""Flow samplers: a policy with ``step()`` (Euler ODE, re-noising SDE) and one loop.

The loop integrates from t = 1 (noise) to t = 0 (clean) on the uniform grid
``t_k = 1 - k / N`` (k = 0..N): N steps, N denoiser evaluations (NFE), 2N forward passes with
classifier-free guidance. At each step the denoiser gives ``x_hat``; prompt cells always hold
their clean latents. With self-conditioning the previous ``x_hat`` is fed back.

- :class:`EulerODE`: ``z <- z + (t_next - t) v_hat`` with ``v_hat = (z - x_hat) / t``. With an
  exact x-predictor it stays on the path ``(1 - t) x + t eps`` and ends exactly at x (tested).
- :class:`ReNoiseSDE`: implied noise ``eps_hat = (z - (1 - t) x_hat) / t``, then
  ``z <- (1 - t_next) x_hat + t_next * (sqrt(1 - churn) eps_hat + sqrt(churn) xi)`` with fresh
  ``xi ~ N(0, I)``. churn = 0 is exactly the Euler step (DDIM-like); churn = 1 re-noises fully
  (predict x, then a fresh draw of z at t_next). The mix keeps unit noise variance.

Both end at ``z_0 = x_hat`` of the last step. **Guidance:** ``x = x_c + s (x_c - x_u)`` where
``x_u`` sees the prompt cells replaced by the learned null latent (s = 0: off).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

SAMPLERS = ("euler", "sde")


class EulerODE:
    """Deterministic Euler step of the probability-flow ODE (x-prediction form)."""

    def step(self, z: Tensor, x_hat: Tensor, t: float, t_next: float, generator=None) -> Tensor:
        return z + (t_next - t) * (z - x_hat) / t


class ReNoiseSDE:
    """Predict x, then re-noise to t_next, a share ``churn`` of the noise fresh (docstring)."""

    def __init__(self, churn: float = 0.5) -> None:
        if not 0.0 <= churn <= 1.0:
            raise ValueError(f"churn: expected a number in [0, 1], got {churn}")
        self.churn = churn

    def step(self, z: Tensor, x_hat: Tensor, t: float, t_next: float, generator=None) -> Tensor:
        eps_hat = (z - (1.0 - t) * x_hat) / t
        xi = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        noise = math.sqrt(1.0 - self.churn) * eps_hat + math.sqrt(self.churn) * xi
        return (1.0 - t_next) * x_hat + t_next * noise


def make_sampler(name: str, churn: float = 0.5):
    if name == "euler":
        return EulerODE()
    if name == "sde":
        return ReNoiseSDE(churn)
    raise ValueError(f"sampler: expected one of {SAMPLERS}, got {name!r}")


Predict = Callable[[Tensor, Tensor, Tensor | None], Tensor]


def flow_sample(
    predict: Predict,
    shape: tuple[int, int, int],
    *,
    steps: int,
    sampler=None,
    given: Tensor | None = None,
    x_given: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, int]:
    """Integrate from noise to latents.

    Args:
        predict: ``(z [B, T, d], t [B], x_sc or None) -> x_hat [B, T, d]``.
        shape: (B, T, d).
        given / x_given: bool [B, T] prompt cells and their latents [B, T, d].

    Returns:
        (z_0 [B, T, d], nfe).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps!r}")
    sampler = sampler or EulerODE()
    z = torch.randn(shape, generator=generator, device=device)
    keep = (lambda a: torch.where(given[..., None], x_given, a)) if given is not None else None
    z = keep(z) if keep else z
    x_sc = None
    for k in range(steps):
        t, t_next = 1.0 - k / steps, 1.0 - (k + 1) / steps
        x_hat = predict(z, torch.full((shape[0],), t, device=device), x_sc).float()
        x_hat = keep(x_hat) if keep else x_hat
        z = sampler.step(z, x_hat, t, t_next, generator)
        z = keep(z) if keep else z
        x_sc = x_hat
    return z, steps


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
