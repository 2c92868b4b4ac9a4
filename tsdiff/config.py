"""The forecaster's configuration, in sections: data, model, training, sampler, calibration.

Each section is a dataclass that documents and checks its own fields; :class:`ForecasterConfig`
is their union (dataclass inheritance), so its fields stay flat: ``Forecaster(freq="h",
dropout=0.1, max_steps=500)``, the YAML files under configs/ts, ``tsdiff fit``'s flags and the
``forecaster`` entry of a saved ``config.json`` all name them directly, as before the split. A
section of a config is :meth:`ForecasterConfig.section` (e.g. ``cfg.section(SamplerSection)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from tsdiff.diffusion import ORDERS, SCHEDULES
from tsdiff.encoding import check_domain
from tsdiff.features import check_holidays, parse_freq

CALIBRATIONS = ("temperature", "spread", "both")
FINAL_PHASES = ("continue", "refit", "none")
CHANNEL_MODES = ("joint", "independent")
MODES = ("masked", "flow")
COVARIATE_SCALINGS = ("context", "global")
FINETUNES = ("lora", "full")


def _positive_ints(obj, names: tuple[str, ...], auto: bool = False) -> None:
    """Each field a positive integer (``auto``: or None, decided from the data at fit)."""
    for name in names:
        v = getattr(obj, name)
        if auto and v is None:
            continue
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
    context_length: int | None = None
    """Context L in steps; None: decided from the frequency and series lengths at fit
    (tsdiff.defaults)."""
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
    holidays: str | None = None
    """Public holidays as calendar inputs (daily and finer data): a country code of the
    ``holidays`` package ("US", "GB", "AU"), optionally with a subdivision ("US-CA"); None:
    none. Calendar features themselves follow the frequency and the history (tsdiff.features)."""
    seasonal_lags: bool = False
    """Give every step the target one season earlier where a season is longer than the context
    (a yearly cycle in daily data; the rule: :func:`tsdiff.features.seasonal_lags`). Off by
    default: on daily_peyton_manning the 364-day lag scored 8-10 % worse wQL than calendar
    features alone in both runs measured (benchmarks/calendar_features.py)."""
    domain: str | dict = "auto"
    """Where the target values live; no sample path leaves it (tsdiff.encoding, domains):
    auto (a channel is non-negative when all its observed training values are >= 0), real,
    nonnegative, or a dict of channel -> [lower, upper] (a number or null each) or one of those
    names, e.g. ``{"relative_humidity": [0, 100]}`` (channels left out: auto). Resolved per
    channel at fit and saved with the model."""

    def __post_init__(self) -> None:
        _positive_ints(self, ("prediction_length",))
        _positive_ints(self, ("context_length",), auto=True)
        parse_freq(self.freq)
        check_holidays(self.holidays, self.freq)
        check_domain(self.domain)


@dataclass
class ModelSection:
    """The denoiser: value encoding, channel layout, Transformer shape."""

    patch_size: int | None = None
    """Context steps per context token; None: from the context length (tsdiff.defaults)."""
    n_bins: int = 256
    """Value bins of the masked mode."""
    mode: str = "masked"
    """masked: value bins and masked diffusion; flow: continuous values and flow matching."""
    channels: str | None = None
    """None: decided from the data at fit (independent for at least 3 channels in at most 4
    series, else joint; tsdiff.defaults). joint: an item's target channels are cells of one sequence and attend to each other, so
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
    d_model: int | None = None
    """Width of the Transformer denoiser; None: decided at fit (tsdiff.defaults)."""
    n_layers: int | None = None
    """Transformer blocks; None: decided at fit (tsdiff.defaults)."""
    n_heads: int = 4
    """Attention heads."""
    dropout: float = 0.0
    """Residual dropout in the denoiser during training (a regulariser for small data)."""
    init: str | None = None
    """None: train a fresh denoiser. ``"base"``: start from the pretrained base shipped in the
    package (tsdiff.pretrained; a folder: a base written by ``python -m tsdiff.pretrain``): the
    model then has the base's shape (context, patch, width, layers, heads, bins) and forecasts
    channels independently; the user's calendar, covariates and lags are new inputs that start
    at zero."""
    finetune: str = "full"
    """With ``init``: ``full`` trains every weight (the default: 0.78 of seasonal naive's wQL on
    the held-out sets at 60 s, against LoRA's 0.89; benchmarks/README.md); ``lora`` trains LoRA
    adapters on the Transformer's projections (peft) and the new input layers, the base frozen
    (a saved forecaster then holds only those: about a tenth of the model)."""
    lora_rank: int = 8
    """Rank of the LoRA adapters (``finetune="lora"``)."""

    def __post_init__(self) -> None:
        _positive_ints(self, ("patch_size", "d_model", "n_layers"), auto=True)
        _positive_ints(self, ("lora_rank",))
        _one_of(self, "finetune", FINETUNES)
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")
        if self.channels is not None and self.channels not in CHANNEL_MODES:
            raise ValueError(f"channels: expected one of {CHANNEL_MODES}, got {self.channels!r}")
        if self.covariate_scaling not in COVARIATE_SCALINGS:
            raise ValueError(
                f"covariate_scaling: expected 'context' or 'global', got {self.covariate_scaling!r}"
            )


@dataclass
class TrainingSection:
    """The optimiser, its budget and where it runs (Lightning)."""

    batch_size: int | None = None
    """Training windows per optimiser step; None: from the window size and the number of
    training windows (tsdiff.defaults)."""
    num_workers: int = 0
    """DataLoader worker processes building training windows (0: in the main process)."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, warmup-stable-decay)."""
    max_steps: int | None = None
    """Optimiser steps (the WSD schedule's length); None: from the number of training windows
    (tsdiff.defaults; the time budget usually ends training first)."""
    max_time_s: float | None = 300.0
    """Wall-clock budget of the whole ``fit`` in seconds, calibration and the final phase on
    the full history included (tsdiff.fitting); training stops early enough to leave them their
    share, and the learning-rate decay follows whichever budget is nearer its end. None: no cap
    (max_steps decides)."""
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
        _positive_ints(self, ("batch_size", "max_steps"), auto=True)
        t = self.max_time_s
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or t <= 0):
            raise ValueError(
                f"max_time_s: expected a positive number of seconds or None, got {t!r}"
            )


@dataclass
class SamplerSection:
    """How paths are drawn (the defaults of ``predict``, ``backtest`` and ``rollout``).

    The default sampler (NFE 2, cosine schedule, 4 paths per network row) is the one that met
    both speed goals of issue 20 in ``benchmarks/forecast_nfe.py`` (elecdemand, 7 windows, 100
    paths, one thread, 2026-12-07): 65 ms CPU per window against DeepAR's 41 ms in the same
    process (1.6x; NFE 2 without branching: 351 ms, 8.6x; the old default NFE H / 4 = 12:
    2,490 ms), CRPS of the horizon sum 0.0328 against 0.0338 at one cell per step (48 NFE,
    11.8 s), cell CRPS 0.0387 against 0.0381. bf16 inference was 4.6x slower on that CPU (no
    AVX512-BF16). The first step (29 % of the cells, the least uncertain) runs once per window;
    the second on 25 rows per window, each drawing the remaining cells for 4 paths.
    """

    order: str = "entropy"
    """Commitment order: entropy (default), margin, random, or prob (mode-seeking; comparison only)."""
    steps: int | None = None
    """Sampler steps = NFE per path; None = 2 (tsdiff.diffusion.default_steps; the flow mode:
    ceil(prediction_length / 4)). The calibration is fitted with these steps
    (``recalibrate(df, steps=...)`` refits it for others)."""
    block_length: int | None = None
    """Horizon steps per semi-autoregressive block; None = one block."""
    schedule: str = "cosine"
    """Cells committed per step: cosine (MaskGIT: few first, most last; default) or linear
    (the same number each step); see tsdiff.diffusion.commit_counts."""
    branch: int = 4
    """Paths per network row: ceil(S / branch) rows per window run the sampler and each
    branches into ``branch`` paths at the last step (those paths share the cells of earlier
    steps); the network cost of S / branch paths. 1: every path its own row. Hard commitment
    only (soft commitment and the flow ignore it)."""
    inference_precision: str | None = None
    """Sampling precision, 32 or bf16; None: bf16 when ``precision`` is a bf16 one, else 32."""

    def __post_init__(self) -> None:
        _one_of(self, "order", ORDERS)
        _one_of(self, "schedule", SCHEDULES)
        _positive_ints(self, ("steps", "block_length"), auto=True)
        if not isinstance(self.branch, int) or self.branch < 1:
            raise ValueError(f"branch: expected a positive integer, got {self.branch!r}")
        if self.inference_precision not in (None, "32", "bf16"):
            raise ValueError(
                f"inference_precision: expected None, '32' or 'bf16', "
                f"got {self.inference_precision!r}"
            )


def sampler_of_old_checkpoint(fields: dict) -> dict:
    """The flat config fields of a saved checkpoint, with the sampler it was calibrated with
    when it predates ``schedule`` and ``branch`` (issue 20): linear, one path per row, and
    steps ceil(prediction_length / 4) where it left them to the default."""
    if "schedule" in fields or "branch" in fields:
        return fields
    H = fields.get("prediction_length", DataSection.prediction_length)
    steps = fields.get("steps")
    if steps is None and isinstance(H, int) and H > 0:
        steps = -(-H // 4)
    return {**fields, "schedule": "linear", "branch": 1, "steps": steps}


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
    the first training phase; about 32 windows are held out in all): a data set of one long
    series gets this many, so raise it where a few horizons are too small a sample for the
    calibration."""
    validation_fraction: float = 0.25
    """At most this share of each series is held out for calibration (whole horizons); a series
    too short to spare one horizon gives no validation window."""
    final_phase: str = "continue"
    """How the final model learns the held-out part after calibrating (tsdiff.fitting):
    continue (a short phase on the full series, 20 % of the first phase's steps, at a fifth of
    the learning rate), refit (a fresh model on the full series, as many steps as the first
    phase) or none (the held-out horizons are never trained on)."""

    def __post_init__(self) -> None:
        _positive_ints(self, ("validation_per_series",))
        _one_of(self, "final_phase", FINAL_PHASES)
        f = self.validation_fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 < f <= 0.5:
            raise ValueError(f"validation_fraction: expected a number in (0, 0.5], got {f!r}")
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
    "FINAL_PHASES",
    "SECTIONS",
    "CalibrationSection",
    "DataSection",
    "ForecasterConfig",
    "ModelSection",
    "SamplerSection",
    "TrainingSection",
]
