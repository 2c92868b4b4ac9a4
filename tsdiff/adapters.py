"""LoRA adapters on the denoiser's Transformer projections, through ``peft``.

:func:`add_lora` wraps the chosen ``nn.Linear`` projections of every block of ``model.backbone``
(attention q/k/v/o, SwiGLU gate/up/down; nothing outside ``backbone.``) in peft's LoRA layers,
in place: each computes ``W x + (alpha / rank) * B A x`` with A [rank, in] random and
B [out, rank] zero, so the model forecasts exactly as the base until it is trained. Every base
weight is frozen except the parameter-name prefixes in ``train_also`` (new input layers of a
fine-tune, say). While adapters are in, a wrapped projection's base weight is named
``...q_proj.base_layer.weight`` and its factors ``...q_proj.lora_A.default.weight`` /
``lora_B``; :func:`merge_lora` folds ``B A`` into the base weights and gives plain
``nn.Linear`` layers (and the base's state_dict names) back.

An adapter saves apart from the base (:func:`save_adapter`: its tensors and
:func:`lora_settings` in one safetensors file); :func:`read_adapter` and then
``add_lora(base, **settings)`` and :func:`load_adapter` rebuild the fine-tuned model.
``peft`` is an optional dependency (extra ``lora``), imported where it is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from lm_core.outputs import one_line, write_output_file

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate", "up", "down")
"""Every projection of a Transformer block (all ``nn.Linear`` without bias): the default."""
_PARENT = {"q_proj": "attn", "k_proj": "attn", "v_proj": "attn", "o_proj": "attn",
           "gate": "mlp", "up": "mlp", "down": "mlp"}  # fmt: skip
ADAPTER = "default"
"""peft's adapter name, part of every LoRA parameter name."""
MISSING_PEFT = "LoRA adapters need peft: pip install 'dlm-engine[lora]'"
_SETTING_KEYS = ("rank", "alpha", "dropout", "targets", "train_also")
_SETTINGS = "_lora_settings"  # attribute of an adapted model: the add_lora arguments
_META = "tsdiff_lora"  # safetensors metadata key of the settings in an adapter file


def _peft():
    """The ``peft`` package, or an ImportError of one line saying how to install it."""
    try:
        import peft  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    except ImportError:
        raise ImportError(MISSING_PEFT) from None
    return peft


def target_pattern(targets=LORA_TARGETS) -> str:
    """The peft ``target_modules`` regex (matched against full module names) of the projections
    ``targets`` in every block of ``backbone``, e.g. ``backbone.blocks.3.attn.q_proj``."""
    parts = []
    for parent in ("attn", "mlp"):
        names = [t for t in targets if _PARENT[t] == parent]
        if names:
            parts.append(rf"{parent}\.(?:{'|'.join(names)})")
    return rf"backbone\.blocks\.\d+\.(?:{'|'.join(parts)})"


def _base_name(name: str) -> str:
    """A parameter's name in the base model (peft inserts ``.base_layer``)."""
    return name.replace(".base_layer.", ".")


def _under(name: str, prefixes) -> bool:
    """True when ``name`` is one of ``prefixes`` or lies under one (``head`` covers
    ``head.weight``, not ``header.weight``)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _is_lora(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def has_lora(model: nn.Module) -> bool:
    """True when :func:`add_lora` adapted ``model`` (and :func:`merge_lora` has not run)."""
    return hasattr(model, _SETTINGS)


def _check_settings(model: nn.Module, rank, alpha, dropout, targets, train_also) -> None:
    if has_lora(model):
        raise ValueError("add_lora: the model already has LoRA adapters (merge_lora them first)")
    if not isinstance(getattr(model, "backbone", None), nn.Module):
        raise ValueError("add_lora: the model has no `backbone` Transformer to adapt")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"add_lora: rank must be a positive integer, got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise ValueError(f"add_lora: alpha must be a positive number, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"add_lora: dropout must be in [0, 1), got {dropout!r}")
    bad = [t for t in targets if t not in LORA_TARGETS]
    if bad or not targets or len(set(targets)) != len(targets):
        raise ValueError(
            f"add_lora: targets must be distinct names among {list(LORA_TARGETS)}, "
            f"got {list(targets)!r}"
        )
    names = [n for n, _ in model.named_parameters()]
    for p in train_also:
        if not isinstance(p, str) or not any(_under(n, [p]) for n in names):
            raise ValueError(f"add_lora: train_also {p!r} names no parameter of the model")


def add_lora(
    model: nn.Module,
    rank: int = 8,
    alpha: float = 16,
    dropout: float = 0.0,
    targets=LORA_TARGETS,
    train_also=(),
) -> nn.Module:
    """Adapt ``model`` (a :class:`tsdiff.model.NumericDenoiser`) in place and return it.

    Wraps the projections ``targets`` of every block of ``model.backbone`` in LoRA layers of
    rank ``rank`` (scaling ``alpha / rank``, ``dropout`` on their input), B zero so that the
    outputs equal the base's exactly. Freezes every base parameter except those whose names lie
    under a prefix in ``train_also`` (e.g. ``"head"``, ``"step_proj"``: base names, without
    peft's ``.base_layer``). The model object, its ``cfg`` and methods stay what they were."""
    targets, train_also = tuple(targets), tuple(train_also)
    _check_settings(model, rank, alpha, dropout, targets, train_also)
    peft = _peft()
    config = peft.LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=float(dropout), bias="none",
        target_modules=target_pattern(targets),
    )  # fmt: skip
    peft.inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    for name, p in model.named_parameters():
        p.requires_grad_(_is_lora(name) or _under(_base_name(name), train_also))
    setattr(model, _SETTINGS, {
        "rank": rank, "alpha": alpha, "dropout": float(dropout),
        "targets": list(targets), "train_also": list(train_also),
    })  # fmt: skip
    return model


def lora_settings(model: nn.Module) -> dict:
    """The :func:`add_lora` arguments of an adapted model: {"rank", "alpha", "dropout",
    "targets", "train_also"} (``add_lora(base, **settings)`` rebuilds the layout)."""
    if not has_lora(model):
        raise ValueError("the model has no LoRA adapters (add_lora first)")
    s = getattr(model, _SETTINGS)
    return dict(s, targets=list(s["targets"]), train_also=list(s["train_also"]))


def adapter_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """(name, parameter) of the adapter: every LoRA factor and the ``train_also`` parameters,
    in ``named_parameters`` order (whatever their ``requires_grad``)."""
    train_also = lora_settings(model)["train_also"]
    for name, p in model.named_parameters():
        if _is_lora(name) or _under(_base_name(name), train_also):
            yield name, p


def trainable_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """(name, parameter) of every parameter with ``requires_grad`` (what an optimiser gets)."""
    return ((n, p) for n, p in model.named_parameters() if p.requires_grad)


def adapter_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The adapter's tensors (detached copies), by parameter name, e.g.
    ``backbone.blocks.0.attn.q_proj.lora_A.default.weight`` [rank, d_model] and ``lora_B``
    [d_model, rank]: rank * (in + out) numbers per wrapped projection, plus ``train_also``."""
    return {n: p.detach().clone() for n, p in adapter_parameters(model)}


def load_adapter(model: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    """Copy an :func:`adapter_state_dict` into ``model``, adapted by :func:`add_lora` with the
    settings it was saved with; missing or unexpected names, or other shapes, are a ValueError
    naming them. Returns ``model``."""
    params = dict(adapter_parameters(model))
    missing = [n for n in params if n not in state]
    unexpected = [n for n in state if n not in params]
    if missing or unexpected:
        raise ValueError(
            f"load_adapter: the adapter does not fit this model (missing {_few(missing)}, "
            f"unexpected {_few(unexpected)}): add_lora with the settings it was saved with"
        )
    for n, p in params.items():
        if tuple(state[n].shape) != tuple(p.shape):
            raise ValueError(
                f"load_adapter: {n} has shape {tuple(state[n].shape)}, the model "
                f"{tuple(p.shape)} (another rank or model size?)"
            )
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(state[n])
    return model


def _few(names: list[str], k: int = 3) -> str:
    """At most k names, and how many more."""
    if not names:
        return "none"
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight (W + (alpha / rank) B A) and put the plain
    ``nn.Linear`` back, in place: the state_dict names are the base's again, every parameter
    requires grad, and the outputs are the adapted model's (to float rounding). Returns
    ``model``."""
    if not has_lora(model):
        raise ValueError("merge_lora: the model has no LoRA adapters")
    layer_type = _peft().tuners.lora.LoraLayer
    wrapped = [(n, m) for n, m in model.named_modules() if isinstance(m, layer_type)]
    for name, layer in wrapped:
        layer.merge(adapter_names=[ADAPTER])
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.get_base_layer())
    for attr in (_SETTINGS, "peft_config"):
        if hasattr(model, attr):
            delattr(model, attr)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


# ---------------------------------------------------------------------------- files
def save_adapter(model: nn.Module, path: str | Path) -> Path:
    """Write the adapter (:func:`adapter_state_dict`, settings in the metadata) to one
    safetensors file ``path``, atomically; an OS error is one line naming the file."""
    state = {n: t.contiguous() for n, t in adapter_state_dict(model).items()}
    meta = {_META: json.dumps(lora_settings(model))}
    return write_output_file(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def read_adapter(path: str | Path) -> tuple[dict[str, Tensor], dict]:
    """(state, settings) of an adapter file of :func:`save_adapter`; a missing, corrupt or
    foreign file is one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such adapter file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
            settings = json.loads((f.metadata() or {})[_META])
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a tsdiff LoRA adapter file ({one_line(e)})") from None
    if not isinstance(settings, dict) or set(settings) != {*_SETTING_KEYS}:
        raise ValueError(f"{path}: adapter settings must have the keys {list(_SETTING_KEYS)}")
    return state, settings
