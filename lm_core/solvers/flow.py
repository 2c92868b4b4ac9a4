"""Flow solvers: a policy with ``step()`` (Euler ODE, re-noising SDE) and one loop.

A solver sees only a ``predict`` callable (z, t, x_sc) -> x_hat; the flow model, its codec and
text live elsewhere (:func:`lm_core.text.flow.generate_flow`).

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
from collections.abc import Callable

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
