"""The numeric denoiser's configuration: its shape, inputs and value encoding (tsdiff.model)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lm_core.config import ModelConfig
from tsdiff.encoding import check_resolved


@dataclass
class TSModelConfig:
    """Shape of the numeric denoiser and its value encoding."""

    context_length: int = 96
    """Context steps L the model sees."""
    prediction_length: int = 24
    """Horizon steps H the model is trained to fill."""
    n_channels: int = 1
    """Target channels C (modelled jointly)."""
    patch_size: int = 8
    """Context steps per context token (1 = no patching)."""
    n_bins: int = 256
    """Value tokens (bins in asinh space of the context-scaled value)."""
    z_max: float = 20.0
    """Clip range of scaled values, in context standard deviations."""
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    n_kv_heads: int | None = None
    n_time_features: int = 0
    time_features: list[str] | None = None
    """Names of the cyclic calendar features (tsdiff.features.Calendar), fixed at fit time;
    None: the legacy set of the frequency (models saved before features were named)."""
    lags: list[int] = field(default_factory=list)
    """Seasonal lags K in steps (tsdiff.features.seasonal_lags): each context step and horizon
    cell also gets its channel's value that many steps earlier, scaled like the target."""
    n_past_covariates: int = 0
    n_future_covariates: int = 0
    n_static_real: int = 0
    static_cardinalities: list[int] = field(default_factory=list)
    """Number of categories of each static categorical covariate."""
    dropout: float = 0.0
    """Residual dropout of the backbone (lm_core ModelConfig.dropout), training only."""
    scale_features: bool = False
    """Feed the context statistics (asinh loc, log scale) of every target and covariate channel
    to the denoiser (as DeepAR feeds log scale). Scaling makes the inputs scale-free; this gives
    back the absolute levels that relations between channels can depend on (an action's effect
    in degrees per unit of heating, say)."""
    covariate_scaling: str = "context"
    """context: each window's covariates are standardised by their own context statistics;
    global: by fixed training-set statistics (``past_cov_stats`` / ``future_cov_stats``), so a
    covariate keeps its absolute meaning (a constant action plan stays what it is)."""
    past_cov_stats: list[list[float]] = field(default_factory=list)
    """[Cp] x (mean, std) of the past covariates over the training data (global scaling)."""
    future_cov_stats: list[list[float]] = field(default_factory=list)
    """[Cf] x (mean, std) of the future covariates over the training data (global scaling)."""
    mode: str = "masked"
    """masked: value bins filled by masked diffusion; flow: continuous values by flow matching."""
    domain: list[dict] = field(default_factory=list)
    """Per target channel its resolved bounds (:func:`tsdiff.encoding.resolve_domain`), applied
    when paths are decoded; [] (models saved before domains): unbounded."""

    def __post_init__(self) -> None:
        check_resolved(self.domain)
        for name in ("context_length", "prediction_length", "n_channels", "patch_size", "n_bins"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if any(not isinstance(k, int) or k < 1 for k in self.lags):
            raise ValueError(f"lags: expected positive integers, got {self.lags!r}")
        if self.mode not in ("masked", "flow"):
            raise ValueError(f"mode: expected 'masked' or 'flow', got {self.mode!r}")
        if self.covariate_scaling not in ("context", "global"):
            raise ValueError(
                f"covariate_scaling: expected 'context' or 'global', got {self.covariate_scaling!r}"
            )
        if self.covariate_scaling == "global" and (
            len(self.past_cov_stats) != self.n_past_covariates
            or len(self.future_cov_stats) != self.n_future_covariates
        ):
            raise ValueError(
                "covariate_scaling='global' needs (mean, std) per covariate: past_cov_stats "
                f"{len(self.past_cov_stats)} for {self.n_past_covariates}, future_cov_stats "
                f"{len(self.future_cov_stats)} for {self.n_future_covariates}"
            )

    @property
    def n_patches(self) -> int:
        return -(-self.context_length // self.patch_size)

    def backbone(self) -> ModelConfig:
        max_len = self.n_patches * self.n_channels + self.prediction_length * self.n_channels
        return ModelConfig(
            vocab_size=self.n_bins + 1,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            n_kv_heads=self.n_kv_heads,
            max_seq_len=max(max_len, 16),
            tie_embeddings=True,
            time_conditioning=self.mode == "flow",
            dropout=self.dropout,
        )

    def to_dict(self) -> dict:
        return asdict(self)
