"""Learning-rate schedule (warmup-stable-decay) and an exponential moving average of weights.

WSD (as in MiniCPM / LLaDA pre-training): the multiplier of the peak learning rate is

- ``(step + 1) / warmup_steps`` during the linear warmup,
- ``1`` during the long stable phase,
- a cosine from ``1`` down to ``min_lr_ratio`` over the last ``decay_fraction * max_steps`` steps.

Under a wall-clock budget the run may stop long before ``max_steps``; the trainer then sets
``time_fraction`` (share of the budget spent, 0 ... 1) and the schedule reads its position as
``max(step, time_fraction * max_steps)``, so the decay still ends when the budget does.

The multiplier is a plain picklable object so that ``LambdaLR.state_dict()`` holds only numbers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


class WSDMultiplier:
    """``step -> lr multiplier`` of the warmup-stable-decay schedule (see module docstring)."""

    def __init__(
        self, max_steps: int, warmup_steps: int, decay_fraction: float, min_lr_ratio: float
    ) -> None:
        if max_steps <= 0:
            raise ValueError(f"trainer.max_steps: expected a positive integer, got {max_steps}")
        self.max_steps = int(max_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(round(decay_fraction * max_steps))
        self.min_lr_ratio = float(min_lr_ratio)
        self.time_fraction = 0.0

    def __call__(self, step: int) -> float:
        warm = 1.0
        if self.warmup_steps > 0:
            warm = min(1.0, (step + 1) / self.warmup_steps)
        pos = max(float(step), self.time_fraction * self.max_steps)
        decay_start = self.max_steps - self.decay_steps
        if self.decay_steps <= 0 or pos < decay_start:
            return warm
        progress = min(1.0, (pos - decay_start) / self.decay_steps)
        cos = 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cos)


def wsd_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    max_steps: int,
    warmup_steps: int,
    decay_fraction: float,
    min_lr_ratio: float,
) -> LambdaLR:
    """A ``LambdaLR`` stepping the WSD multiplier once per optimiser step."""
    return LambdaLR(optimizer, WSDMultiplier(max_steps, warmup_steps, decay_fraction, min_lr_ratio))


class EMA:
    """Exponential moving average of a module's floating-point parameters (kept in float32).

    ``update(model)`` after every optimiser step: ``shadow = d * shadow + (1 - d) * param`` with
    the warmed-up decay ``d = min(decay, (1 + n) / (10 + n))`` after n updates. ``swapped(model)``
    is a context manager that puts the averaged weights in the module and restores the live ones
    on exit (used for validation and for saving inference checkpoints).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"optim.ema_decay: expected a number in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {
            name: p.detach().float().clone()
            for name, p in model.named_parameters()
            if p.dtype.is_floating_point
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, p in model.named_parameters():
            s = self.shadow.get(name)
            if s is None:
                continue
            if s.device != p.device:
                s = self.shadow[name] = s.to(p.device)
            s.lerp_(p.detach().float(), 1.0 - d)
        self.num_updates += 1

    @contextlib.contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        live = {}
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.shadow:
                    live[name] = p.detach().clone()
                    p.copy_(self.shadow[name].to(p.device, p.dtype))
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in live:
                        p.copy_(live[name])

    def state_dict(self) -> dict:
        """Plain tensors and ints (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "num_updates": self.num_updates,
            "shadow": {k: v.cpu() for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.num_updates = int(state["num_updates"])
        for k, v in state["shadow"].items():
            if k in self.shadow:
                self.shadow[k] = v.to(self.shadow[k].device, torch.float32)
