"""The forecaster's configuration, in sections: data, model, training, sampler, calibration.

Each section is a dataclass that documents and checks its own fields; :class:`ForecasterConfig`
is their union (dataclass inheritance), so its fields stay flat: ``Forecaster(freq="h",
dropout=0.1, max_steps=500)``, the YAML files under configs/ts, ``tsdiff fit``'s flags and the
``forecaster`` entry of a saved ``config.json`` all name them directly, as before the split. A
section of a config is :meth:`ForecasterConfig.section` (e.g. ``cfg.section(SamplerSection)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from tsdiff.diffusion import ORDERS
from tsdiff.encoding import check_domain
from tsdiff.features import parse_freq

CALIBRATIONS = ("temperature", "spread", "both")
CHANNEL_MODES = ("joint", "independent")
MODES = ("masked", "flow")
COVARIATE_SCALINGS = ("context", "global")


def _positive_ints(obj, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(obj, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")


def _one_of(obj, name: str, allowed: tuple) -> None:
    v = getattr(obj, name)
    if v not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {v!r}")


@dataclass
class DataSection:
    """What is forecast: horizon, context, frequency and the roles of the covariate columns."""

    prediction_length: int = 24
    """Horizon H in steps."""
    context_length: int = 168
    """Context L in steps."""
    freq: str = "h"
    """pandas frequency string of the series (e.g. h, 30min, D, MS)."""
    past_covariates: list[str] = field(default_factory=list)
    """Columns seen in the history only (scaled from the context)."""
    future_covariates: list[str] = field(default_factory=list)
    """Columns known over the horizon too (calendar, plans, actions); predict() needs them."""
    static_covariates: list[str] = field(default_factory=list)
    """Real-valued per-item columns (constant over time)."""
    static_categorical: list[str] = field(default_factory=list)
    """Categorical per-item columns; a category unseen in training is an error at predict time."""
    domain: str | dict = "auto"
    """Where the target values live; no sample path leaves it (tsdiff.encoding, domains):
    auto (a channel is non-negative when all its observed training values are >= 0), real,
    nonnegative, or a dict of channel -> [lower, upper] (a number or null each) or one of those
    names, e.g. ``{"relative_humidity": [0, 100]}`` (channels left out: auto). Resolved per
    channel at fit and saved with the model."""

    def __post_init__(self) -> None:
        _positive_ints(self, ("prediction_length", "context_length"))
        parse_freq(self.freq)
        check_domain(self.domain)


@dataclass
class ModelSection:
    """The denoiser: value encoding, channel layout, Transformer shape."""

    patch_size: int = 8
    """Context steps per context token."""
    n_bins: int = 256
    """Value bins of the masked mode."""
    mode: str = "masked"
    """masked: value bins and masked diffusion; flow: continuous values and flow matching."""
    channels: str = "joint"
    """joint: an item's target channels are cells of one sequence and attend to each other, so
    the joint over channels is modelled; independent: every channel is forecast as its own
    univariate series by one shared model that knows the channel by a learned embedding
    (channel independence, as PatchTST and GluonTS's DeepAR on multivariate data): C times more,
    C times shorter training sequences, which can pay on a few long series, but paths are
    independent across channels given each channel's own context."""
    scale_features: bool = False
    """Give the denoiser each channel's context level and scale (asinh loc, log scale), so that
    effects of covariates in absolute units (actions, say) can be learned; see TSModelConfig."""
    covariate_scaling: str = "context"
    """context: covariates standardised per window by their context statistics; global: by their
    training-set mean and std (recommended for actions: a constant plan keeps its meaning)."""
    d_model: int = 128
    """Width of the Transformer denoiser."""
    n_layers: int = 3
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads."""
    dropout: float = 0.0
    """Residual dropout in the denoiser during training (a regulariser for small data)."""

    def __post_init__(self) -> None:
        _positive_ints(self, ("patch_size",))
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")
        if self.channels not in CHANNEL_MODES:
            raise ValueError(f"channels: expected one of {CHANNEL_MODES}, got {self.channels!r}")
        if self.covariate_scaling not in COVARIATE_SCALINGS:
            raise ValueError(
                f"covariate_scaling: expected 'context' or 'global', got {self.covariate_scaling!r}"
            )


@dataclass
class TrainingSection:
    """The optimiser, its budget and where it runs (Lightning)."""

    batch_size: int = 64
    """Training windows per optimiser step."""
    num_workers: int = 0
    """DataLoader worker processes building training windows (0: in the main process)."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, warmup-stable-decay)."""
    max_steps: int = 2000
    """Optimiser steps (the WSD schedule's length)."""
    max_time_s: float | None = None
    """Stop training after this many seconds, or max_steps, whichever comes first (None: run
    max_steps); the learning-rate decay follows whichever budget is nearer its end."""
    seed: int = 0
    """Seed of training windows, initialisation and masking."""
    accelerator: str = "cpu"
    """Lightning accelerator for training (cpu, gpu, auto); inference follows it."""
    devices: int | str = 1
    """Lightning devices (e.g. 2 GPUs with DDP)."""
    precision: str = "32-true"
    """Lightning training precision: 32-true, or bf16-mixed (GPUs; CPUs with AVX512-BF16)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        _positive_ints(self, ("batch_size", "max_steps"))


@dataclass
class SamplerSection:
    """How paths are drawn (the defaults of ``predict``, ``backtest`` and ``rollout``)."""

    order: str = "entropy"
    """Commitment order: entropy (default), margin, random, or prob (mode-seeking; comparison only)."""
    steps: int | None = None
    """Sampler steps = NFE per path; None = ceil(prediction_length / 4). The calibration is
    fitted with these steps (``recalibrate(df, steps=...)`` refits it for others)."""
    block_length: int | None = None
    """Horizon steps per semi-autoregressive block; None = one block."""
    inference_precision: str | None = None
    """Sampling precision, 32 or bf16; None: bf16 when ``precision`` is a bf16 one, else 32."""

    def __post_init__(self) -> None:
        _one_of(self, "order", ORDERS)
        if self.inference_precision not in (None, "32", "bf16"):
            raise ValueError(
                f"inference_precision: expected None, '32' or 'bf16', "
                f"got {self.inference_precision!r}"
            )


@dataclass
class CalibrationSection:
    """What is fitted on held-out validation windows after training."""

    calibrate: bool = True
    """Calibrate on held-out validation windows after training (what: see ``calibration``)."""
    calibration: str = "temperature"
    """What calibrate fits, by validation CRPS: temperature (the sampler's softmax temperature /
    flow noise scale), spread (a centre-preserving factor on the paths' spread around their mean:
    keeps means and hence plan effects; recommended for scenario rollouts), or both (temperature,
    then spread)."""
    validation_per_series: int = 7
    """At most this many held-out validation windows per series (its last horizons, cut from
    training; about 32 windows are held out in all): a data set of one long series gets this
    many, so raise it where a few horizons are too small a sample for the calibration."""

    def __post_init__(self) -> None:
        _positive_ints(self, ("validation_per_series",))
        if self.calibration not in CALIBRATIONS:
            raise ValueError(
                f"calibration: expected one of {CALIBRATIONS}, got {self.calibration!r}"
            )


SECTIONS = (DataSection, ModelSection, TrainingSection, SamplerSection, CalibrationSection)


@dataclass
class ForecasterConfig(
    CalibrationSection, SamplerSection, TrainingSection, ModelSection, DataSection
):
    """Everything that defines a forecaster run (mirrored by configs/ts/*.yaml): the fields of
    :class:`DataSection`, :class:`ModelSection`, :class:`TrainingSection`,
    :class:`SamplerSection` and :class:`CalibrationSection`, flat."""

    def __post_init__(self) -> None:
        for section in SECTIONS:  # each section checks its own fields, data first
            section.__post_init__(self)

    def section(self, cls: type):
        """The fields of one section (a class of ``SECTIONS``) as an instance of it."""
        return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})


__all__ = [
    "CALIBRATIONS",
    "CHANNEL_MODES",
    "SECTIONS",
    "CalibrationSection",
    "DataSection",
    "ForecasterConfig",
    "ModelSection",
    "SamplerSection",
    "TrainingSection",
]
