"""tsdiff: probabilistic multivariate forecasting on lm_core's block denoiser.

Numbers enter through a value encoding (context scaling + asinh bins), horizon cells are filled
by lm_core's sampler loop with a commitment order that does not depend on the sampled values,
and forecasts are sample paths ``[items, samples, horizon, channels]``.
"""

from tsdiff.forecast import Forecast
from tsdiff.forecaster import Forecaster, ForecasterConfig

__all__ = ["Forecast", "Forecaster", "ForecasterConfig"]
