"""A flow LM for inference (codec + denoiser) and its checkpoint directory.

Layout (the lm_core format, ``objective: "flow"``)::

    DIR/config.json        {"format": "lm_core", "objective": "flow", "model": the denoiser's
                            ModelConfig, "mask_id": int, "extra": {"flow": {"config": FlowConfig,
                            "vocab_size": V, "encoder": null | {"path": encoder_ckpt,
                            "model": its ModelConfig}}, ...}}
    DIR/model.safetensors  "denoiser.*" and "codec.*" tensors: the bottleneck, the decoder, the
                            normaliser statistics (h_mean/h_std, z_mean/z_std) and the frozen
                            encoder's weights (a copy, so the directory is self-contained;
                            ``encoder.path`` records where they came from)
    DIR/tokenizer/
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from lm_core.checkpoint import CheckpointError, one_line, read_json_object, write_checkpoint_dir
from lm_core.config import FlowConfig, ModelConfig
from lm_core.data.tokenizers import load_tokenizer
from lm_core.flow.codec import LatentCodec
from lm_core.flow.denoiser import FlowDenoiser
from lm_core.nn.transformer import Transformer


class FlowModel(nn.Module):
    """Inference bundle: ``codec`` (frozen encoder, bottleneck, decoder) and ``denoiser``."""

    def __init__(self, codec: LatentCodec, denoiser: FlowDenoiser, flow: FlowConfig) -> None:
        super().__init__()
        self.codec, self.denoiser, self.flow = codec, denoiser, flow

    @property
    def cfg(self) -> ModelConfig:
        return self.denoiser.cfg


def build_codec(flow: FlowConfig, vocab_size: int, encoder: Transformer | None) -> LatentCodec:
    return LatentCodec(
        vocab_size,
        flow.d_latent,
        encoder=encoder,
        d_encoder=flow.d_encoder,
        decoder_hidden=flow.decoder_hidden,
        with_embedding=flow.encoder_features == "hidden+embedding",
    )


def is_flow_checkpoint(path: str | Path) -> bool:
    """True if ``path/config.json`` is an lm_core checkpoint with ``objective: flow``."""
    f = Path(path) / "config.json"
    try:
        meta = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    return isinstance(meta, dict) and meta.get("objective") == "flow"


def save_flow_checkpoint(
    path: str | Path,
    codec: LatentCodec,
    denoiser: FlowDenoiser,
    flow: FlowConfig,
    tokenizer=None,
    *,
    extra: dict | None = None,
) -> Path:
    """Write a flow checkpoint directory atomically (layout in the module docstring)."""
    enc = codec.encoder
    meta = {
        "format": "lm_core",
        "model": denoiser.cfg.to_dict(),
        "mask_id": None if tokenizer is None else tokenizer.mask_id,
        "objective": "flow",
        "extra": {
            **(extra or {}),
            "flow": {
                "config": dataclasses.asdict(flow),
                "vocab_size": codec.vocab_size,
                "encoder": None
                if enc is None
                else {"path": flow.encoder_ckpt, "model": enc.cfg.to_dict()},
            },
        },
    }
    state = {f"codec.{k}": v for k, v in codec.state_dict().items()}
    state.update({f"denoiser.{k}": v for k, v in denoiser.state_dict().items()})
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}

    return write_checkpoint_dir(path, state, meta, tokenizer)


def load_flow_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """(FlowModel in eval mode, tokenizer or None, meta) from a flow checkpoint directory."""
    path = Path(path)
    if not is_flow_checkpoint(path) or not (path / "model.safetensors").is_file():
        raise CheckpointError(
            f"{path}: not a complete flow checkpoint (config.json objective flow)"
        )
    where = f"flow checkpoint {path}"
    meta = read_json_object(path / "config.json", where)
    try:
        info = meta["extra"]["flow"]
        # checkpoints written before encoder_features existed used the hidden states only
        flow = FlowConfig(**{"encoder_features": "hidden", **info["config"]})
        enc = None
        if info["encoder"] is not None:
            enc = Transformer(ModelConfig.from_dict(info["encoder"]["model"]))
        codec = build_codec(flow, int(info["vocab_size"]), enc)
        den = FlowDenoiser(ModelConfig.from_dict(meta["model"]), flow.d_latent, flow.self_condition)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{where}: config.json is corrupt ({one_line(e)})") from None
    model = FlowModel(codec, den, flow)
    try:
        state = load_file(str(path / "model.safetensors"), device="cpu")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{where}: model.safetensors is corrupt ({one_line(e)})") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor whose shape does not match the config
        raise CheckpointError(f"{where}: weights do not match config ({one_line(e)})") from None
    missing = [m for m in missing if not m.endswith("lm_head.weight")]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match (missing {missing}, unexpected {unexpected})"
        )
    model.to(device).eval()
    codec.freeze()
    tok = None
    if (path / "tokenizer").is_dir():
        try:
            tok = load_tokenizer(path / "tokenizer")
        except Exception as e:  # noqa: BLE001 - a corrupt tokenizer folder, whatever it raises
            raise CheckpointError(f"{where}: tokenizer/ is corrupt ({one_line(e)})") from None
    return model, tok, meta
