"""Settings the user did not give, decided from the data: one place, one table of rules.

A :class:`~tsdiff.config.ForecasterConfig` field left at ``None`` is *automatic*: ``fit``
calls :func:`resolve`, which describes the training data (:func:`describe`: number and lengths
of the series, frequency, channels, covariates) and fills every automatic field by the rules
below. A field the user gave is never changed. What was decided is recorded in
``Forecaster.history["defaults"]`` ({field: value}) and is part of the saved config, so a loaded
forecaster is the fitted one.

The rules turn what the per-set benchmark settings taught (benchmarks/README.md, issue 4's
``TSDIFF_HP`` / ``CPU_HP`` / ``JOINT_HP``: us_employment 148 monthly series, elecdemand one
half-hourly series, TMY3 one hourly series of 10 channels, Appliances one 10-minute series of 6
channels) into functions of the data:

=================  ==========================================================  ==================
field              rule                                                        why
=================  ==========================================================  ==================
context_length     sub-daily: one week of steps when that is at most 512       the winning
                   (hourly 168, half-hourly 336), else one day (10-min 144,    per-set contexts
                   5-min 288), at most 512; daily: max(3 H, 8 weeks);          (us_employment 36,
                   weekly: max(3 H, 52); monthly: max(3 H, 36); quarterly:     elecdemand 336,
                   max(3 H, 12); yearly: max(3 H, 12). Then at most the median TMY3 168,
                   series length minus H (at least H), so short series are     Appliances 144)
                   not padded mostly with nothing.
patch_size         4 when the context is at most 64 steps, 8 up to 512, else   the per-set patch
                   16: a context of 9 to 42 tokens.                            sizes (4 on
                                                                               monthly, 8 else)
channels           independent when there are at least 3 target channels and   TMY3 (10 ch) and
                   at most 4 series ("a few long multichannel series"); joint  Appliances (6 ch):
                   otherwise (one channel, 2 channels, or many series).        independent wQL
                                                                               0.83x / 0.83x the
                                                                               joint model's
d_model, n_layers  128 and 3 (the CPU settings of every set); 192 and 4 on a   CPU_HP vs
                   GPU when the data holds over a million target cells.        TSDIFF_HP
batch_size         8192 / tokens per window, rounded down to a power of 2, in  us_employment 256
                   [32, 256] (tokens: L / patch + H x channels a sequence),    (21 tokens),
                   and at most a quarter of the distinct training windows      TMY3 / Appliances
                   (at least 16).                                              128 (45 / 54)
max_steps          50 passes over the distinct training windows, in [300,      time decides on
                   4000] steps; the ``max_time_s`` budget (default 300 s)      large data (the
                   usually ends training first, and the learning-rate decay    LR decay follows
                   follows whichever budget is nearer its end.                 the nearer budget)
=================  ==========================================================  ==================

``max_time_s`` is not automatic: its default (300 s) is a plain default, ``None`` means no cap
(:mod:`tsdiff.fitting` spends it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from tsdiff.config import ForecasterConfig
from tsdiff.data.frames import Series
from tsdiff.features import parse_freq

AUTO_FIELDS = (
    "context_length",
    "patch_size",
    "channels",
    "d_model",
    "n_layers",
    "batch_size",
    "max_steps",
)
"""The fields :func:`resolve` decides when they are ``None``."""

MAX_CONTEXT = 512
MIN_STEPS, MAX_STEPS, PASSES = 300, 4000, 50
TOKEN_BUDGET = 8192  # tokens per batch that the batch-size rule aims at
FEW_SERIES, MANY_CHANNELS = 4, 3  # channel independence: >= 3 channels in at most 4 series
BIG_DATA = 1_000_000  # target cells above which a GPU gets the larger model


@dataclass(frozen=True)
class DataShape:
    """What the rules look at: the training data's shape, frequency and covariates."""

    n_series: int
    lengths: tuple[int, ...]
    n_channels: int
    freq: str
    prediction_length: int
    n_covariates: int = 0

    @property
    def median_length(self) -> int:
        return int(np.median(self.lengths)) if self.lengths else 0

    @property
    def cells(self) -> int:
        """Target cells in all: sum of lengths x channels."""
        return int(sum(self.lengths)) * self.n_channels

    def windows(self, context_length: int) -> int:
        """Distinct training windows (one per end step that leaves a full horizon), per channel
        sequence; ``context_length`` does not limit them (short contexts are padded)."""
        return int(sum(max(n - self.prediction_length, 0) for n in self.lengths))


def describe(series: list[Series], config: ForecasterConfig) -> DataShape:
    """The :class:`DataShape` of a fit's series (they share one layout)."""
    s = series[0]
    return DataShape(
        n_series=len(series),
        lengths=tuple(len(x) for x in series),
        n_channels=int(s.target.shape[1]),
        freq=config.freq,
        prediction_length=config.prediction_length,
        n_covariates=int(s.past_cov.shape[1] + s.future_cov.shape[1]),
    )


def _step(freq: str) -> pd.Timedelta | None:
    try:
        return pd.Timedelta(parse_freq(freq))
    except (ValueError, TypeError):
        return None


def context_rule(shape: DataShape) -> int:
    """The context length of the table (before the cap by series length)."""
    H, freq = shape.prediction_length, shape.freq
    step = _step(freq)
    if step is not None and step < pd.Timedelta(days=1):
        day = max(1, int(pd.Timedelta(days=1) / step))
        return min(7 * day if 7 * day <= MAX_CONTEXT else day, MAX_CONTEXT)
    if step is not None and step < pd.Timedelta(days=7):
        return max(3 * H, 56)
    if step is not None:
        return max(3 * H, 52)
    name = type(parse_freq(freq)).__name__
    if "Week" in name:
        return max(3 * H, 52)
    if "Month" in name:
        return max(3 * H, 36)
    return max(3 * H, 12)  # quarterly and yearly


def decide_context(shape: DataShape) -> int:
    """:func:`context_rule`, at most the median length minus H (at least H)."""
    H = shape.prediction_length
    return max(1, min(context_rule(shape), max(H, shape.median_length - H)))


def decide_patch(context_length: int) -> int:
    return 4 if context_length <= 64 else 8 if context_length <= 512 else 16


def decide_channels(shape: DataShape) -> str:
    few_long = shape.n_channels >= MANY_CHANNELS and shape.n_series <= FEW_SERIES
    return "independent" if few_long else "joint"


def decide_size(shape: DataShape, accelerator: str) -> tuple[int, int]:
    gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    return (192, 4) if gpu and shape.cells > BIG_DATA else (128, 3)


def decide_batch(shape: DataShape, context_length: int, patch: int, channels: str) -> int:
    c = 1 if channels == "independent" else shape.n_channels
    tokens = -(-context_length // patch) + shape.prediction_length * c
    windows = shape.windows(context_length) * (shape.n_channels // c)
    b = min(max(TOKEN_BUDGET // tokens, 32), 256, max(windows // 4, 16))
    return 1 << (int(b).bit_length() - 1)  # a power of 2, rounded down


def decide_steps(shape: DataShape, context_length: int, batch: int, channels: str) -> int:
    per = shape.n_channels if channels == "independent" else 1
    windows = shape.windows(context_length) * per
    return int(min(max(-(-PASSES * windows // batch), MIN_STEPS), MAX_STEPS))


def resolve(
    config: ForecasterConfig, shape: DataShape
) -> tuple[ForecasterConfig, dict[str, int | str]]:
    """``config`` with every automatic field that is ``None`` decided for data ``shape``, and
    the decisions ({field: value}, only the fields that were ``None``). Given fields are kept
    and feed the later rules (a given context sizes the patch, a given channel mode the batch)."""
    c, out = config, {}

    def pick(name: str, rule):
        value = getattr(c, name)
        if value is None:
            value = out[name] = rule()
        return value

    L = pick("context_length", lambda: decide_context(shape))
    P = pick("patch_size", lambda: decide_patch(L))
    ch = pick("channels", lambda: decide_channels(shape))
    size = decide_size(shape, c.accelerator)
    pick("d_model", lambda: size[0])
    pick("n_layers", lambda: size[1])
    B = pick("batch_size", lambda: decide_batch(shape, L, min(P, L), ch))
    pick("max_steps", lambda: decide_steps(shape, L, B, ch))
    return dataclasses.replace(c, **out), out


def unresolved(config: ForecasterConfig) -> list[str]:
    """The automatic fields of ``config`` still ``None`` (a config not yet fitted)."""
    return [n for n in AUTO_FIELDS if getattr(config, n) is None]


__all__ = ["AUTO_FIELDS", "DataShape", "decide_context", "describe", "resolve", "unresolved"]
