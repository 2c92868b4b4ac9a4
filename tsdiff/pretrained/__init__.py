"""The pretrained tsdiff base: a univariate denoiser shipped inside the package, read without a
download, that forecasts zero-shot and that fits start from.

The base (``tsdiff/pretrained/base``: ``config.json`` + ``model.safetensors``, written by
``python -m tsdiff.pretrain``) is a :class:`~tsdiff.model.NumericDenoiser` with one channel and
no calendar or covariate inputs: every window is scaled by its own context
(:mod:`tsdiff.encoding`), so one model serves any frequency and level. Its weights do not depend
on the horizon, so it serves any ``H`` up to the largest pretraining horizon
(:attr:`Base.max_horizon`); multichannel frames are forecast channel by channel.

- Zero-shot: :meth:`tsdiff.Forecaster.from_pretrained` (:func:`zero_shot_config` and
  :func:`base_model` here).
- Fine-tuning: ``Forecaster(..., init="base").fit(df)`` builds the fit's own model (with the
  user's calendar, covariates, lags) with the base's shape, copies the base's weights in
  (:func:`init_from_base`: the new inputs start at zero, so the untrained model *is* the base),
  then trains all weights or LoRA adapters (:mod:`tsdiff.adapters`) on the usual training path.

Every problem with the packaged or a given base is one line (:class:`CheckpointError`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lm_core.checkpoint import CheckpointError, read_json_object
from lm_core.outputs import atomic_write_dir, one_line, reason
from tsdiff.data.frames import DataError
from tsdiff.model import NumericDenoiser
from tsdiff.model_config import TSModelConfig

BASE_NAME = "tsdiff-base-v1"
BASE_DIR = Path(__file__).resolve().parent / "base"
"""The packaged base."""
FORMAT = "tsdiff-base"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
SHAPE_FIELDS = ("context_length", "patch_size", "n_bins", "d_model", "n_layers", "n_heads")
"""The settings a fit that starts from the base takes from it."""


@dataclass
class Base:
    """A pretrained base: its config, its model and what it was trained on (``meta``)."""

    config: TSModelConfig
    model: NumericDenoiser
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def max_horizon(self) -> int:
        return self.config.prediction_length

    @property
    def sha256(self) -> str:
        """Digest of the weights (what an adapter was trained on top of)."""
        return state_digest(self.model.state_dict())

    def describe(self) -> dict:
        """What a forecaster built on it records (``history["init"]``): its name, digest and
        folder (None: the packaged base, wherever the package is installed)."""
        packaged = self.path is None or self.path.resolve() == BASE_DIR
        return {"base": self.meta.get("name", BASE_NAME), "sha256": self.sha256,
                "path": None if packaged else str(self.path)}  # fmt: skip


def save_base(path: str | Path, base: Base, half: bool = False) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into folder ``path``, all or nothing.
    ``half``: store the weights as float16 (half the file; :func:`load_base` reads them into
    the float32 model), as the packaged base is."""
    meta = {"format": FORMAT, "model": base.config.to_dict(), "meta": base.meta}
    state = {k: v.detach().contiguous().cpu() for k, v in base.model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}

    def write(tmp: Path) -> None:
        save_file(state, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=1, default=str))

    return atomic_write_dir(Path(path), write)


def load_base(path: str | Path | None = None) -> Base:
    """The base in folder ``path`` (default, or ``"base"``: the packaged one, :data:`BASE_DIR`), in
    eval mode on the CPU. A missing, corrupt or mismatched file: :class:`CheckpointError` in one
    line."""
    path = Path(path) if path not in (None, "base") else BASE_DIR
    cfg_file, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not cfg_file.is_file() or not weights.is_file():
        raise CheckpointError(
            f"{path}: no tsdiff base there (expected {CONFIG_FILE} and {WEIGHTS_FILE}; the "
            "packaged one is written by `python -m tsdiff.pretrain --config "
            "configs/ts/pretrain.yaml`)"
        )
    meta = read_json_object(cfg_file, str(path))
    if meta.get("format") != FORMAT or not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"{cfg_file}: not a tsdiff base (format {meta.get('format')!r})")
    try:
        cfg = TSModelConfig(**meta["model"])
        model = NumericDenoiser(cfg)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{cfg_file}: corrupt base config ({one_line(e)})") from None
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except OSError as e:
        raise CheckpointError(f"{weights}: cannot be read ({reason(e)})") from None
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights}: corrupt base weights ({one_line(e)})") from None
    return Base(cfg, model.eval(), meta.get("meta", {}) or {}, path)


def check_horizon(base: Base, prediction_length: int) -> None:
    """One line when the base cannot serve horizon ``prediction_length``."""
    if prediction_length > base.max_horizon:
        raise DataError(
            f"prediction_length {prediction_length}: the tsdiff base serves horizons of 1 to "
            f"{base.max_horizon} steps (any frequency, any number of channels, forecast one by "
            "one); fit a model of your own for longer horizons"
        )


def shape_settings(base: Base) -> dict:
    """The :class:`~tsdiff.config.ForecasterConfig` fields a model on the base must have."""
    out = {name: getattr(base.config, name) for name in SHAPE_FIELDS}
    return out | {"channels": "independent", "mode": "masked"}


def finetune_config(config, base: Base):
    """``config`` (a ForecasterConfig with ``init`` set) with the base's shape. A shape field
    the user set (not its default) to another value than the base's is refused in one line."""
    check_horizon(base, config.prediction_length)
    need = shape_settings(base)
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name, value in need.items():
        given = getattr(config, name)
        if given != defaults[name] and given != value:
            raise ValueError(
                f"{name}={given!r}: a fit with init={config.init!r} takes the base's {name} "
                f"({value!r}); leave it unset"
            )
    return dataclasses.replace(config, **need)


def base_model(base: Base, prediction_length: int, domain: list | None = None) -> NumericDenoiser:
    """A copy of the base's denoiser for horizon ``prediction_length`` (the weights are shared
    by every horizon) with ``domain`` (resolved bounds; tsdiff.encoding)."""
    check_horizon(base, prediction_length)
    cfg = dataclasses.replace(base.config, prediction_length=prediction_length,
                              domain=list(domain or []))  # fmt: skip
    model = NumericDenoiser(cfg)
    model.load_state_dict(base.model.state_dict())
    return model.eval()


def init_from_base(model: NumericDenoiser, base: Base) -> list[str]:
    """Copy the base's weights into ``model`` (a fit's denoiser with the base's shape and
    possibly more inputs); returns the names of the parameters the base does not have (new
    inputs: calendar, covariates, lags, static and channel embeddings), which start at zero so
    that ``model`` computes what the base computes until it is trained.

    The first patch projection grows from the base's 2 inputs per step (value, observed flag)
    to the model's: the base's columns are copied to the same (step, input) places."""
    src = base.model.state_dict()
    new = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "patch_proj.0.weight":
                P = model.cfg.patch_size
                k_new, k_base = p.shape[1] // P, src[name].shape[1] // P
                w = torch.zeros_like(p).view(p.shape[0], P, k_new)
                w[:, :, :k_base] = src[name].view(p.shape[0], P, k_base)
                p.copy_(w.view_as(p))
                if k_new > k_base:
                    new.append(name)
            elif name in src and src[name].shape == p.shape:
                p.copy_(src[name])
            else:
                p.zero_()
                new.append(name)
    return new


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names and bytes of a state dict, in name order."""
    h = hashlib.sha256()
    for k, v in sorted(state.items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


__all__ = [
    "BASE_DIR",
    "BASE_NAME",
    "Base",
    "base_model",
    "check_horizon",
    "finetune_config",
    "init_from_base",
    "load_base",
    "save_base",
    "shape_settings",
]
