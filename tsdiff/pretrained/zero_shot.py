"""Zero-shot forecasters on the base: :meth:`tsdiff.Forecaster.from_pretrained`.

A zero-shot forecaster has no training data of its own, so whatever a fit would have read from
its frame, it reads from each frame it forecasts (:func:`bind_frame`): the column roles (targets:
every column but the id and time unless ``target`` names them) and every target's domain (a
non-negative history gives non-negative paths: :func:`tsdiff.encoding.resolve_domain`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tsdiff.config import ForecasterConfig
from tsdiff.data.frames import Columns, DataError
from tsdiff.encoding import resolve_domain
from tsdiff.pretrained import base_model, check_horizon, load_base, shape_settings

COVARIATE_SETTINGS = (
    "past_covariates",
    "future_covariates",
    "static_covariates",
    "static_categorical",
    "holidays",
)
"""Settings a zero-shot forecaster refuses: the base reads the target alone."""


def zero_shot(cls, prediction_length: int, freq: str, path, roles: tuple, settings: dict):
    """A ``cls`` (:class:`tsdiff.Forecaster`) around the base in ``path`` (None or ``"base"``:
    the packaged one) for horizon ``prediction_length``, bound to frames by ``roles`` (target,
    item_id, timestamp) at each predict. ``settings``: other ForecasterConfig fields (the
    sampler's); covariates and the base's shape fields are refused in one line."""
    if bad := [k for k in COVARIATE_SETTINGS if settings.get(k)]:
        raise ValueError(
            f"{bad[0]}: the tsdiff base forecasts zero-shot from the target alone; to use "
            "covariates or holidays, fine-tune it: Forecaster(..., init='base', "
            f"{bad[0]}=...).fit(df)"
        )
    base = load_base(path)
    check_horizon(base, prediction_length)
    shape = shape_settings(base)
    if clash := sorted(set(settings) & set(shape)):
        raise ValueError(f"{clash[0]}: a zero-shot forecaster has the base's ({shape[clash[0]]})")
    config = ForecasterConfig(
        prediction_length=prediction_length, freq=freq, calibrate=False, max_steps=1,
        batch_size=1, **shape, **settings,
    )  # fmt: skip
    f = cls(config)
    f.model = base_model(base, prediction_length).to(f.device)
    f.history = {"init": base.describe() | {"finetune": None}, "zero_shot": True}
    f.roles = roles
    return f


def bind_frame(f, df: pd.DataFrame, target, item_id: str, timestamp: str) -> None:
    """Set ``f.columns`` from ``df`` and the roles, and the model's domain from the targets'
    values in ``df`` (the config's ``domain`` setting, auto by default)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    for col in (item_id, timestamp):
        if col not in df.columns:
            raise DataError(f"column {col!r} not in the frame (columns: {list(df.columns)[:8]})")
    if target is None:
        target = [c for c in df.columns if c not in (item_id, timestamp)]
    targets = [target] if isinstance(target, str) else list(target)
    if missing := [t for t in targets if t not in df.columns]:
        raise DataError(f"target column {missing[0]!r} not in the frame")
    if bad := [t for t in targets if not pd.api.types.is_numeric_dtype(df[t])]:
        raise DataError(
            f"column {bad[0]!r} is not numeric: name the target columns with target=[...]"
        )
    bind_values(f, targets, df[targets].to_numpy(np.float64), item_id, timestamp)


def bind_values(
    f, targets: list[str], values: np.ndarray, item_id="item_id", timestamp="timestamp"
) -> None:
    """Set ``f.columns`` to ``targets`` and the model's domain from ``values`` [T, C] (NaN:
    unobserved) by the config's ``domain`` setting: what :func:`bind_frame` does for a frame,
    and the GluonTS predictor for a batch of entries."""
    f.columns = Columns(targets=list(targets), item_id=item_id, timestamp=timestamp)
    domain = resolve_domain(f.config.domain, list(targets), values)
    f.model.cfg = dataclasses.replace(f.model.cfg, domain=domain)


__all__ = ["bind_frame", "bind_values", "zero_shot"]
