"""The models of the suite (:mod:`benchmarks.suite`), each with its library's defaults.

Every runner takes the long frame and protocol of a data set, trains only on the rows before each
item's first test origin, forecasts every window of ``window_splits`` (same order) and returns a
:class:`~benchmarks.suite_metrics.Forecast`. ``budget_s`` is the one training budget of the run.

- ``tsdiff``: ``Forecaster(prediction_length=H, freq=F)`` plus the data's column roles (its
  known covariates as ``future_covariates``, ``target=`` its target columns), the seed, and
  ``max_time_s=budget_s`` only when a budget is given; ``backtest`` with 100 paths.
- ``tsdiff_zeroshot``: the pretrained base (:mod:`tsdiff.pretrained`),
  ``Forecaster.from_pretrained(prediction_length=H, freq=F, path=base)``, no training (fit 0 s):
  ``backtest`` with 100 paths on the frame's target columns only (the base reads no covariate);
  each target's domain is read from the history before the test windows, as a fit would
  (``Forecaster.backtest`` does so for a zero-shot forecaster, never from the scored future).
- ``tsdiff_ft`` / ``tsdiff_ft_lora``: as ``tsdiff`` but fine-tuned from the base:
  ``Forecaster(..., init=base)`` (its default, every weight; ``tsdiff_ft_lora``: LoRA adapters)
  (its default LoRA adapters), ``max_time_s=budget_s`` when a budget is given.

  The base of both: the folder in the environment variable ``TSDIFF_BASE`` (the suite's pieces
  run in subprocesses that inherit it), else :data:`BASE` (None: the base packaged in tsdiff).
- ``seasonal_naive``: the last season before the origin, repeated (one point forecast: all
  paths equal).
- ``auto_ets``, ``auto_arima``, ``auto_theta`` (statsforecast defaults, ``season_length`` of the
  protocol): one model per (item, channel), fitted on the last :func:`stat_context` points before the
  first origin; later origins reuse the fitted parameters (``forward`` on the history before that
  origin). Prediction intervals at levels 10 ... 90 give the quantiles 0.05 ... 0.95.
- ``stat_ensemble``: fev-bench's statistical ensemble, the equal-weight mean of the three
  models' quantiles at each level (quantile averaging); fit time is the sum of the three.
- ``deepar``, ``patchtst``: GluonTS torch estimators with their defaults (DeepAR: context = H,
  2 x 40 LSTM, Student-t, lags and calendar features from the frequency; PatchTST: context 10 H,
  patch 16 (it has no default), stride 8, d_model 32, 2 layers), trainer defaults of GluonTS
  (100 epochs of 50 batches of 32) capped by Lightning's ``max_time`` = the budget (default
  ``GLUONTS_BUDGET_S``). DeepAR reads the known covariates; both see the channel index as a
  static category through the shared entries of :mod:`benchmarks.peers`.
- ``tft``: GluonTS torch Temporal Fusion Transformer with its defaults (context = H, hidden 32,
  4 heads, quantile loss at 0.1 ... 0.9: quantiles, no paths, scored as fracast's are), same
  trainer and budget; the known covariates as dynamic reals, the channel index as a static
  category.
- ``fracast``: zero-shot, its bundled weights, context of its own length (NaN-masked), quantiles
  0.1 ... 0.9; only where ``H`` <= its native horizon (48) (any frequency: it is scale-free).

Missing targets: tsdiff, the GluonTS models and fracast take NaN (masked); seasonal naive and the
statsforecast models get the history before each origin imputed (linear interpolation inside,
the nearest value at the ends), never the scored future.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pandas as pd

from benchmarks import peers
from benchmarks.suite_metrics import LEVELS, N_PATHS, Forecast
from tsdiff.config import TrainingSection
from tsdiff.data.protocol import Protocol, origin_positions, window_splits
from tsdiff.forecaster import Forecaster

STAT_SEASONS, STAT_MIN, STAT_MAX = 20, 200, 1000  # statsforecast context: see stat_context
QUICK_STAT_CONTEXT = 300  # --quick: a smoke run, not the protocol


def stat_context(season: int) -> int:
    """Points the statsforecast models are fitted on (and run forward over): the last 20
    seasons, at least 200 and at most 1000 (AutoARIMA took ~70 s per 1000-point monthly series
    on the 2-core machine)."""
    return int(np.clip(STAT_SEASONS * season, STAT_MIN, STAT_MAX))


GLUONTS_BUDGET_S = 300.0
BASE: str | None = None  # the base of tsdiff_zeroshot / tsdiff_ft when TSDIFF_BASE is unset
BASE_ENV = "TSDIFF_BASE"
STAT_LEVELS = tuple(range(10, 100, 10))  # central intervals -> quantiles 0.05 ... 0.95
FRACAST_HORIZON = 48


def windows(df: pd.DataFrame, protocol: Protocol) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Per window (``window_splits`` order): the item's targets ``[T, C]``, its known covariates
    ``[T, K]`` and the row position of the origin."""
    out = []
    cols, cov = list(protocol.target_columns), list(protocol.known_covariates)
    for _, rows, positions in origin_positions(df, protocol):
        y, x = rows[cols].to_numpy(np.float64), rows[cov].to_numpy(np.float64)
        out.extend((y, x, int(p)) for p in positions)
    return out


def impute_history(y: np.ndarray) -> np.ndarray:
    """NaNs of a history ``[T]`` filled: linear inside, nearest value at the ends."""
    s = pd.Series(y)
    if s.notna().sum() == 0:
        raise ValueError("a history with no observed value")
    return s.interpolate(limit_direction="both").to_numpy(np.float64)


def backtest_kwargs(protocol: Protocol) -> dict:
    """``Forecaster.backtest``'s window arguments: the protocol's shared origins, or the last
    ``n_test_windows`` horizons of each series."""
    if protocol.test_origins:
        return {"origins": list(protocol.test_origins)}
    return {"windows": protocol.n_test_windows}


def protocol_order(items: list, origins: list, test: list) -> list[int]:
    """Positions in a tsdiff backtest (windows ordered by ``items`` and ``origins``: tsdiff
    sorts item ids) of the protocol's windows ``test`` (``window_splits``' ``(context, future)``
    pairs, in the frame's item order): ``samples[protocol_order(...)]`` is in protocol order."""
    where = {
        (str(i), pd.Timestamp(o)): k for k, (i, o) in enumerate(zip(items, origins, strict=True))
    }
    return [where[(str(fut["item_id"].iloc[0]), fut["timestamp"].iloc[0])] for _, fut in test]


def base_folder() -> str | None:
    """The base of the pretrained runners: ``$TSDIFF_BASE``, else :data:`BASE` (None: the
    packaged one)."""
    return os.environ.get(BASE_ENV) or BASE


def _fit_backtest(f: Forecaster, df, protocol, seed: int) -> Forecast:
    """Fit ``f`` on the training rows, backtest every protocol window (protocol order)."""
    cols, covs = list(protocol.target_columns), list(protocol.known_covariates)
    train, test = window_splits(df, protocol)
    t0 = time.perf_counter()
    f.fit(train[["item_id", "timestamp", *cols, *covs]], target=cols)
    t1 = time.perf_counter()
    wk = backtest_kwargs(protocol)
    bt = f.backtest(
        df[["item_id", "timestamp", *cols, *covs]], num_samples=N_PATHS, seed=seed, **wk
    )
    samples = bt["samples"][protocol_order(bt["items"], bt["origins"], test)]
    return Forecast(samples=samples, fit_s=t1 - t0, predict_s=time.perf_counter() - t1)


def tsdiff(df, protocol, seed=0, budget_s=None, quick=False) -> Forecast:
    """tsdiff with its defaults (see the module docstring)."""
    kw = {"max_time_s": float(budget_s)} if budget_s else {}
    f = Forecaster(
        prediction_length=protocol.prediction_length, freq=protocol.freq,
        future_covariates=list(protocol.known_covariates), seed=seed, progress=False, **kw,
    )  # fmt: skip
    return _fit_backtest(f, df, protocol, seed)


def tsdiff_ft(df, protocol, seed=0, budget_s=None, quick=False, finetune="full") -> Forecast:
    """tsdiff fine-tuned from the pretrained base (see the module docstring)."""
    kw = {"max_time_s": float(budget_s)} if budget_s else {}
    f = Forecaster(
        prediction_length=protocol.prediction_length, freq=protocol.freq,
        init=base_folder() or "base", future_covariates=list(protocol.known_covariates),
        seed=seed, progress=False, finetune=finetune, **kw,
    )  # fmt: skip
    return _fit_backtest(f, df, protocol, seed)


def tsdiff_ft_lora(df, protocol, seed=0, budget_s=None, quick=False) -> Forecast:
    """:func:`tsdiff_ft` training LoRA adapters (``finetune="lora"``), the base frozen."""
    return tsdiff_ft(df, protocol, seed, budget_s, quick, finetune="lora")


def tsdiff_zeroshot(df, protocol, seed=0, budget_s=None, quick=False, **sampler) -> Forecast:
    """The pretrained base zero-shot (see the module docstring): no fit, ``fit_s`` 0.
    ``sampler``: sampler settings for ``from_pretrained`` (``branch``...; default: none)."""
    cols = list(protocol.target_columns)
    f = Forecaster.from_pretrained(
        prediction_length=protocol.prediction_length,
        freq=protocol.freq,
        path=base_folder(),
        target=cols,
        **sampler,
    )
    _, test = window_splits(df, protocol)
    t0 = time.perf_counter()  # backtest takes each domain from the history before the windows
    bt = f.backtest(
        df[["item_id", "timestamp", *cols]], num_samples=N_PATHS, seed=seed,
        **backtest_kwargs(protocol),
    )  # fmt: skip
    samples = bt["samples"][protocol_order(bt["items"], bt["origins"], test)]
    return Forecast(samples=samples, fit_s=0.0, predict_s=time.perf_counter() - t0)


def seasonal_naive(df, protocol, seed=0, budget_s=None, quick=False) -> Forecast:
    """The last season before each origin (history imputed), repeated over the horizon."""
    t0 = time.perf_counter()
    m, h = protocol.season_length, protocol.prediction_length
    out = []
    for y, _, p in windows(df, protocol):
        hist = np.stack([impute_history(y[:p, c]) for c in range(y.shape[1])], -1)
        idx = p - m + (np.arange(h) % m) - m * (np.arange(h) // m)
        out.append(hist[np.maximum(idx, 0)])
    point = np.stack(out)[:, None]  # [N, 1, H, C]
    return Forecast(samples=point.repeat(N_PATHS, 1), predict_s=time.perf_counter() - t0)


def _stat_model(name: str, season: int):
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    cls = {"auto_ets": AutoETS, "auto_arima": AutoARIMA, "auto_theta": AutoTheta}[name]
    return cls(season_length=season)


def _stat_quantiles(res: dict) -> np.ndarray:
    """statsforecast's ``{mean, lo-L, hi-L}`` -> quantiles ``[Q, H]`` at LEVELS."""
    lo = [res[f"lo-{lv}"] for lv in reversed(STAT_LEVELS)]  # 0.05 ... 0.45
    hi = [res[f"hi-{lv}"] for lv in STAT_LEVELS]  # 0.55 ... 0.95
    return np.stack([*lo, res["mean"], *hi])


def statsforecast_model(name, df, protocol, seed=0, budget_s=None, quick=False) -> Forecast:
    """One of auto_ets / auto_arima / auto_theta (see the module docstring)."""
    h, m = protocol.prediction_length, protocol.season_length
    ws = windows(df, protocol)
    n, c = len(ws), len(protocol.target_columns)
    q = np.empty((len(LEVELS), n, h, c))
    fit_s = pred_s = 0.0
    fitted: dict = {}
    ctx = min(stat_context(m), QUICK_STAT_CONTEXT) if quick else stat_context(m)
    for i, (y, _, p) in enumerate(ws):
        for ch in range(c):
            hist = impute_history(y[:p, ch])[-ctx:]
            key = (id(y), ch)  # one fit per (item, channel), on its first window's history
            t0 = time.perf_counter()
            if key not in fitted:
                fitted[key] = _stat_model(name, m).fit(hist)
                t1 = time.perf_counter()
                fit_s += t1 - t0
                t0 = t1
            res = fitted[key].forward(hist, h, level=list(STAT_LEVELS))
            q[:, i, :, ch] = _stat_quantiles(res)
            pred_s += time.perf_counter() - t0
    return Forecast(quantiles=q, levels=LEVELS, fit_s=fit_s, predict_s=pred_s)


def stat_ensemble(members: list[Forecast]) -> Forecast:
    """Equal-weight mean of the members' quantiles at each level (all on ``LEVELS``)."""
    q = np.mean([np.sort(f.quantiles, axis=0) for f in members], axis=0)
    return Forecast(
        quantiles=q, levels=LEVELS, fit_s=sum(f.fit_s for f in members),
        predict_s=sum(f.predict_s for f in members),
    )  # fmt: skip


def _trainer(budget_s: float, tmp: str) -> dict:
    return {
        "max_time": {"seconds": float(budget_s)}, "accelerator": "cpu", "devices": 1,
        "enable_progress_bar": False, "enable_model_summary": False, "logger": False,
        "default_root_dir": tmp,
    }  # fmt: skip


def gluonts_model(name, df, protocol, seed=0, budget_s=None, quick=False) -> Forecast:
    """deepar, patchtst or tft (see the module docstring)."""
    from gluonts.torch.model.deepar import DeepAREstimator  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    from gluonts.torch.model.patch_tst import PatchTSTEstimator  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    from gluonts.torch.model.tft import TemporalFusionTransformerEstimator  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    budget = float(budget_s) if budget_s else GLUONTS_BUDGET_S
    h = protocol.prediction_length
    k = len(protocol.known_covariates)
    freq, channels = peers._period_freq(protocol.freq), len(protocol.target_columns)
    with tempfile.TemporaryDirectory(prefix="suite_") as tmp:
        common = dict(prediction_length=h, trainer_kwargs=_trainer(budget, tmp))
        if name == "deepar":
            cls, use_covariates = DeepAREstimator, k > 0
            kwargs = dict(freq=freq, num_feat_dynamic_real=k, num_feat_static_cat=1,
                          cardinality=[channels])  # fmt: skip
        elif name == "tft":
            cls, use_covariates = TemporalFusionTransformerEstimator, k > 0
            kwargs = dict(freq=freq, static_cardinalities=[channels],
                          dynamic_dims=[k] if k else None)  # fmt: skip
        else:
            cls, use_covariates, kwargs = PatchTSTEstimator, False, dict(patch_len=16)
        r = peers._gluonts_peer(
            name, cls, df, protocol, N_PATHS, seed, use_covariates, {**common, **kwargs}
        )
    return Forecast(
        samples=r.samples, quantiles=r.quantiles, levels=r.levels, fit_s=r.fit_seconds,
        predict_s=r.predict_seconds,
    )  # fmt: skip


def fracast(df, protocol, seed=0, budget_s=None, quick=False) -> Forecast:
    """fracast zero-shot (see the module docstring)."""
    from fracast import FracastModel  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    h = protocol.prediction_length
    if h > FRACAST_HORIZON:
        raise ValueError(f"fracast: horizon {h} > its native {FRACAST_HORIZON} steps")
    t0 = time.perf_counter()
    model = FracastModel.from_pretrained()
    t1 = time.perf_counter()
    w = model.context_length
    ws = windows(df, protocol)
    rows = []
    for y, _, p in ws:
        for ch in range(y.shape[1]):
            hist = y[max(0, p - w) : p, ch]
            rows.append(np.concatenate([np.full(w - len(hist), np.nan), hist]))
    out = np.concatenate(
        [
            model.forecast_batch(np.stack(rows[i : i + 256]), horizon=h)
            for i in range(0, len(rows), 256)
        ]
    )  # [N * C, H, Q]
    n, c = len(ws), len(protocol.target_columns)
    q = out.reshape(n, c, h, -1).transpose(3, 0, 2, 1)  # [Q, N, H, C]
    return Forecast(
        quantiles=q, levels=tuple(model.quantiles), fit_s=t1 - t0,
        predict_s=time.perf_counter() - t1,
    )  # fmt: skip


MODELS = ("tsdiff", "seasonal_naive", "auto_ets", "auto_arima", "auto_theta", "stat_ensemble",
          "deepar", "patchtst", "tft", "fracast", "tsdiff_zeroshot", "tsdiff_ft", "tsdiff_ft_lora")  # fmt: skip
STAT_MEMBERS = ("auto_ets", "auto_arima", "auto_theta")
TSDIFF_TRAINED = ("tsdiff", "tsdiff_ft", "tsdiff_ft_lora")
GLUONTS = ("deepar", "patchtst", "tft")
SEEDED = (*TSDIFF_TRAINED, *GLUONTS)  # trained deep models: several seeds


def training_budget(name: str, budget_s: float | None) -> float | None:
    """Seconds of training model ``name`` ran under: ``budget_s`` when the run gave one, else its
    own default (tsdiff's ``max_time_s``, :data:`GLUONTS_BUDGET_S`); None for a model that
    does not train (seasonal naive, the statsforecast models, fracast, zero-shot tsdiff)."""
    if name in TSDIFF_TRAINED:
        return float(budget_s) if budget_s else TrainingSection().max_time_s
    if name in GLUONTS:
        return float(budget_s) if budget_s else GLUONTS_BUDGET_S
    return None


def run(name: str, df, protocol, seed=0, budget_s=None, quick=False, cache=None) -> Forecast:
    """Forecast of model ``name``. ``cache``: an object with ``get(model)`` / ``put(model,
    forecast)`` / ``failure(model)`` for the statsforecast members, so that the ensemble reuses
    their forecasts (and fails, naming it, when a member's piece failed)."""
    if name in STAT_MEMBERS:
        fc = statsforecast_model(name, df, protocol, seed, budget_s, quick)
        if cache is not None:
            cache.put(name, fc)
        return fc
    if name == "stat_ensemble":
        members = []
        for m in STAT_MEMBERS:
            if cache is not None and (err := cache.failure(m)):
                raise RuntimeError(f"member {m} failed: {err}")
            fc = cache.get(m) if cache is not None else None
            members.append(
                fc if fc is not None else run(m, df, protocol, seed, budget_s, quick, cache)
            )
        return stat_ensemble(members)
    if name in GLUONTS:
        return gluonts_model(name, df, protocol, seed, budget_s, quick)
    runners = {"tsdiff": tsdiff, "seasonal_naive": seasonal_naive, "fracast": fracast,
               "tsdiff_zeroshot": tsdiff_zeroshot, "tsdiff_ft": tsdiff_ft,
               "tsdiff_ft_lora": tsdiff_ft_lora}  # fmt: skip
    if name not in runners:
        raise ValueError(f"--models: unknown model {name!r}; expected some of {list(MODELS)}")
    return runners[name](df, protocol, seed, budget_s, quick)
