"""The whole of ``Forecaster.fit`` in one time budget, and no training data lost to calibration.

A fit runs in phases:

1. **first phase**: train on every series less its held-out validation horizons
   (:func:`tsdiff.train.holdout`: at most ``validation_per_series`` horizons and at most
   ``validation_fraction`` of each series);
2. **calibration** on those held-out windows (:mod:`tsdiff.calibration`);
3. **final phase** (``final_phase``): ``continue`` trains the same model on the full series for
   20 % of the first phase's steps at a fifth of the learning rate (warmup, then the WSD decay);
   ``refit`` trains a fresh model on the full series for as many steps as the first phase;
   ``none`` keeps the first-phase model (the held-out horizons are never trained on).
   The calibration fitted in 2 is kept for the final model.

``max_time_s`` caps all of it. Before training, one sampler call on the validation windows is
timed with the (untrained, equally costly) model: calibration needs about
``CALIBRATION_CALLS`` such calls (more with a spread). Calibration gets at most
``CALIBRATION_SHARE`` of the budget (fewer validation windows when its estimate is larger); the
rest, less a margin for the Trainers' start-up, is split between the first and the final phase
in proportion to their steps (1 : 0.2 for continue, 1 : 1 for refit). Calibration stops at its
deadline (a shorter temperature grid, no spread; skipped, temperature 1, with
``history["calibration_skipped"]`` when not even one sampler call fits), and the final phase at
the budget's end.

``history`` gains ``phases``: one entry per training phase, ``{"phase", "steps",
"series_lengths"}`` (the lengths of the series it trained on, in item order), so that what the
final model saw is on record (and saved with it). ``steps`` and ``final_lr`` stay the first
phase's step count and the last phase's learning rate.
"""

from __future__ import annotations

import dataclasses
import math
import time

import lightning as L
import numpy as np
import torch

from tsdiff.adapters import add_lora
from tsdiff.config import ForecasterConfig
from tsdiff.data.frames import Series
from tsdiff.defaults import describe, resolve
from tsdiff.features import Calendar, history_span, seasonal_lags
from tsdiff.pretrained import Base, finetune_config, init_from_base, load_base
from tsdiff.train import build_module, fit_module, holdout, model_config, train_loader

CONTINUE_FRACTION = 0.2  # final-phase steps per first-phase step (continue)
CONTINUE_LR = 0.2  # final-phase peak learning rate / lr (continue)
SHARES = {"continue": CONTINUE_FRACTION, "refit": 1.0, "none": 0.0}  # final / first phase time
CALIBRATION_SHARE = 0.2  # most of the budget calibration may take
CALIBRATION_CALLS = {"temperature": 10, "spread": 4, "both": 14}  # 16-path sampler calls
MIN_WINDOWS = 4  # calibration keeps at least this many windows when it must shed some


class Budget:
    """Seconds left of ``total`` since ``start`` (``time.monotonic()``); total None: no cap."""

    def __init__(self, total: float | None, start: float) -> None:
        self.total, self.start = total, start

    def left(self) -> float:
        if self.total is None:
            return math.inf
        return self.total - (time.monotonic() - self.start)

    def deadline(self, reserve: float = 0.0) -> float | None:
        """The monotonic time ``reserve`` seconds before the end (None without a cap)."""
        return None if self.total is None else self.start + self.total - reserve


class Clock:
    """Wall-clock seconds of the phases of a fit (``laps``: {phase: seconds since the last})."""

    def __init__(self, start: float) -> None:
        self.last, self.laps = start, {}

    def lap(self, name: str) -> float:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 2)
        self.last = now
        return now


def margin(total: float | None) -> float:
    """Seconds kept for Trainer start-up and the steps that overrun a time limit."""
    return 0.0 if total is None else 1.0 + 0.05 * total


def time_sampler(f, windows: list[dict], n: int = 16, probe: int = 2, paths: int = 4) -> float:
    """Seconds of one ``n``-path sampler call on ``windows`` with ``f``'s current model,
    estimated from a call of ``paths`` paths on ``probe`` of them, scaled linearly in windows
    and paths (an overestimate where a small call is dominated by its fixed cost: the safe
    side). The probe is small so that it costs a small part of the budget itself."""
    k = min(probe, len(windows))
    batch = f.model_batch(windows[:k])
    g = torch.Generator(device=f.device).manual_seed(0)
    t0 = time.monotonic()
    f.sample_batch(batch, paths, generator=g, **f.sampler_options())
    return (time.monotonic() - t0) * (len(windows) / k) * (n / paths)


def start_from_base(model, base: Base, config: ForecasterConfig) -> dict:
    """Copy the base's weights into a fresh ``model`` (:func:`tsdiff.pretrained.init_from_base`)
    and, with ``finetune="lora"``, wrap its projections in LoRA adapters with the base frozen,
    the new inputs trainable (:func:`tsdiff.adapters.add_lora`). Returns what ``history["init"]``
    records."""
    new = init_from_base(model, base)
    if config.finetune == "lora":
        add_lora(model, rank=config.lora_rank, train_also=tuple(new))
    return base.describe() | {"finetune": config.finetune, "new_inputs": new}


def lengths(series: list[Series]) -> list[int]:
    return [len(s) for s in series]


def fit_phases(
    f,
    series: list[Series],
    budget: Budget,
    *,
    checkpoint_dir=None,
    resume=None,
    checkpoint_every: int = 100,
) -> dict:
    """Train ``f`` (a :class:`tsdiff.Forecaster` with its columns set) on ``series`` in the
    phases above; sets ``f.config`` (its ``None`` settings decided from the data:
    :mod:`tsdiff.defaults`, recorded in ``history["defaults"]``), ``f.model`` (with the calendar
    inputs and seasonal lags chosen for this data: :mod:`tsdiff.features`), ``f.temperature``,
    ``f.spread``, and returns the history. Checkpoints (``checkpoint_dir`` / ``resume``) are the first
    phase's; calibration and the final phase are deterministic given it."""
    base = load_base(f.config.init) if f.config.init else None
    if base is not None:  # the base's shape, channels independent (tsdiff.pretrained)
        f.config = finetune_config(f.config, base)
    f.config, decided = resolve(f.config, describe(series, f.config))
    c: ForecasterConfig = f.config
    calendar = Calendar.choose(c.freq, history_span([s.index for s in series], c.freq), c.holidays)
    longest = max(len(s) for s in series)
    lags = seasonal_lags(c.freq, c.context_length, longest) if c.seasonal_lags else []
    series = [dataclasses.replace(s, time_feat=calendar.features(s.index)) for s in series]
    clock = Clock(budget.start)
    clock.lap("data")
    L.seed_everything(c.seed, workers=True, verbose=False)
    train_series, val = holdout(series, c, lags=lags) if c.calibrate else (series, [])
    final = c.final_phase if val else "none"
    cards = [len(f.categories[col]) for col in f.columns.static_cat]
    mcfg = model_config(c, series, cards, calendar, lags, f.columns.targets)
    module = build_module(c, mcfg)
    init = {"init": start_from_base(module.model, base, c)} if base is not None else {}
    f.model = module.model.to(f.device).eval()
    f.temperature, f.spread = 1.0, 1.0

    first_cfg, cal_reserve, per_call = c, 0.0, 0.0
    if budget.total is not None:
        if val:
            per_call = time_sampler(f, val)
            estimate = per_call * CALIBRATION_CALLS[c.calibration]
            cal_reserve = min(estimate, CALIBRATION_SHARE * budget.total)
            if estimate > cal_reserve:  # shed windows so that the whole grid still fits
                keep = max(MIN_WINDOWS, int(len(val) * cal_reserve / estimate))
                rng = np.random.default_rng(c.seed)
                per_call *= min(keep, len(val)) / len(val)
                val = [val[i] for i in sorted(rng.choice(len(val), min(keep, len(val)), False))]
        share = SHARES[final]
        train_s = (budget.left() - cal_reserve - 2 * margin(budget.total)) / (1.0 + share)
        first_cfg = dataclasses.replace(c, max_time_s=max(train_s, 0.5))
    module.model.train()
    t_first = clock.lap("prepare")
    history = fit_module(
        module, train_loader(train_series, c, lags), first_cfg, checkpoint_dir=checkpoint_dir,
        resume=resume, checkpoint_every=checkpoint_every,
    )  # fmt: skip
    history["phases"] = [
        {"phase": "first", "steps": history["steps"], "series_lengths": lengths(train_series)}
    ]
    t_first = clock.lap("first") - t_first
    f.model = module.model.to(f.device).eval()
    f.history = history | init
    f.history["defaults"] = decided
    if val:  # calibration leaves the final phase its share of the first phase's time
        deadline = budget.deadline(SHARES[final] * t_first + margin(budget.total))
        if deadline is not None and deadline - time.monotonic() < per_call:
            f.history["calibration_skipped"] = "max_time_s left no time for one sampler call"
        else:
            f.calibrate(val, deadline=deadline)
    clock.lap("calibration")
    f.timings = clock.laps
    if final == "none":
        return f.history
    steps = history["steps"]
    if final == "continue":
        steps = max(1, math.ceil(CONTINUE_FRACTION * steps))
        module.hparams.update(
            lr=c.lr * CONTINUE_LR, max_steps=steps, warmup_steps=max(1, steps // 10),
            seed=c.seed + 1,
        )  # fmt: skip
    else:  # refit: a fresh model, the first phase's recipe and step count
        L.seed_everything(c.seed, workers=True, verbose=False)
        module = build_module(dataclasses.replace(c, max_steps=steps), mcfg)
        if base is not None:
            start_from_base(module.model, base, c)
    left = budget.left() - margin(budget.total)
    cfg = dataclasses.replace(
        c, max_steps=steps, seed=c.seed + (final == "continue"),
        max_time_s=None if budget.total is None else max(left, 0.5),
    )  # fmt: skip
    module.model.train()
    done = fit_module(module, train_loader(series, cfg, lags), cfg)
    f.model = module.model.to(f.device).eval()
    clock.lap("final")
    f.history["final_lr"] = done["final_lr"]
    f.history["phases"].append(
        {"phase": final, "steps": done["steps"], "series_lengths": lengths(series)}
    )
    return f.history


__all__ = ["Budget", "fit_phases", "time_sampler"]
