"""Import (and export) of LLaDA-format checkpoints, without running any code from them.

A LLaDA-format directory holds ``config.json`` and safetensors weights, either one
``model.safetensors`` or shards listed in ``model.safetensors.index.json``. Only JSON and
safetensors are read: no ``trust_remote_code``, no pickle. Tensor names map as follows
(i = layer)::

    model.transformer.wte.weight                 -> tok_emb.weight
    model.transformer.blocks.{i}.attn_norm       -> blocks.{i}.attn_norm
    model.transformer.blocks.{i}.q_proj|k_proj|v_proj -> blocks.{i}.attn.q_proj|k_proj|v_proj
    model.transformer.blocks.{i}.attn_out        -> blocks.{i}.attn.o_proj
    model.transformer.blocks.{i}.ff_norm         -> blocks.{i}.mlp_norm
    model.transformer.blocks.{i}.ff_proj         -> blocks.{i}.mlp.gate   (the SiLU-gated one)
    model.transformer.blocks.{i}.up_proj         -> blocks.{i}.mlp.up
    model.transformer.blocks.{i}.ff_out          -> blocks.{i}.mlp.down
    model.transformer.ln_f.weight                -> norm_f.weight
    model.transformer.ff_out.weight (untied)     -> lm_head.weight

Config keys used: d_model, n_heads, n_kv_heads, n_layers, mlp_hidden_size (or mlp_ratio),
vocab_size, embedding_size (the padded embedding rows; used as the model's vocab_size),
rope_theta, weight_tying, max_sequence_length, rms_norm_eps, mask_token_id, eos_token_id,
pad_token_id. Options this Transformer cannot reproduce (biases, non-RMS norms, QK norm, ALiBi,
no RoPE, logit scaling, QKV clipping) are refused with a ValueError naming the key.

Loading LLaDA-8B-Instruct (mask id 126336) from a local copy of its files::

    from lm_core.text.llada import load_llada, HFTokenizer
    model, meta = load_llada("LLaDA-8B-Instruct", device="cuda", dtype=torch.bfloat16)
    tok = HFTokenizer.from_dir("LLaDA-8B-Instruct", mask_id=meta["mask_id"])  # 126336
    prompt = ("<|startoftext|><|start_header_id|>user<|end_header_id|>\\n\\n"
              "What is 7 * 8?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n")
    out = generate(model, tok, [prompt], gen_length=128, block_length=32, steps=128,
                   eos_id=126348)  # <|eot_id|> ends an Instruct answer

iLLaDA-8B: the same calls; its config gives ``mask_token_id`` 5 (pass ``mask_id=5`` to
``load_llada`` if a copy lacks the key). ``lm-core generate/score/choose --ckpt DIR`` accept such
a directory too (see :func:`load_any`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lm_core.checkpoint import (
    CheckpointError,
    atomic_write_file,
    atomic_write_text,
    check_token_id,
    load_checkpoint,
    one_line,
    read_json_object,
    safe_member,
)
from lm_core.config import ConfigError, ModelConfig
from lm_core.nn.layers import RotaryEmbedding
from lm_core.nn.transformer import Transformer

PREFIX = "model.transformer."
_BLOCK = {
    "attn_norm": "attn_norm", "q_proj": "attn.q_proj", "k_proj": "attn.k_proj",
    "v_proj": "attn.v_proj", "attn_out": "attn.o_proj", "ff_norm": "mlp_norm",
    "ff_proj": "mlp.gate", "up_proj": "mlp.up", "ff_out": "mlp.down",
}  # fmt: skip
_TOP = {
    "wte.weight": "tok_emb.weight",
    "ln_f.weight": "norm_f.weight",
    "ff_out.weight": "lm_head.weight",
}
_REFUSED = {
    "include_bias": True, "bias_for_layer_norm": True, "attention_layer_norm": True,
    "alibi": True, "rope": False, "scale_logits": True, "multi_query_attention": True,
}  # fmt: skip


def llada_to_lm_name(name: str) -> str | None:
    """LLaDA tensor name -> lm_core state-dict name (None if it is not a known weight)."""
    if not name.startswith(PREFIX):
        return None
    rest = name[len(PREFIX) :]
    if rest in _TOP:
        return _TOP[rest]
    m = re.fullmatch(r"blocks\.(\d+)\.(\w+)\.weight", rest)
    if m and m.group(2) in _BLOCK:
        return f"blocks.{m.group(1)}.{_BLOCK[m.group(2)]}.weight"
    return None


def lm_to_llada_name(name: str) -> str:
    """Inverse of :func:`llada_to_lm_name`."""
    inv_top = {v: k for k, v in _TOP.items()}
    if name in inv_top:
        return PREFIX + inv_top[name]
    inv_block = {v: k for k, v in _BLOCK.items()}
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.weight", name)
    if not m or m.group(2) not in inv_block:
        raise ValueError(f"{name}: no LLaDA name for this tensor")
    return f"{PREFIX}blocks.{m.group(1)}.{inv_block[m.group(2)]}.weight"


def llada_config(cfg: dict, *, max_seq_len: int | None = None) -> ModelConfig:
    """LLaDA config.json dict -> :class:`ModelConfig` (ValueError naming unsupported keys)."""
    for key, bad in _REFUSED.items():
        if key in cfg and cfg[key] == bad:
            raise ValueError(f"config.json: {key}={bad} is not supported by lm_core's Transformer")
    for key, ok in (("layer_norm_type", ("rms",)), ("block_type", ("llama",)),
                    ("activation_type", ("silu", "swiglu"))):  # fmt: skip
        if cfg.get(key) is not None and cfg[key] not in ok:
            raise ValueError(f"config.json: {key}={cfg[key]!r} is not supported (expected {ok})")
    if cfg.get("clip_qkv") is not None:
        raise ValueError("config.json: clip_qkv is not supported")
    for key in ("d_model", "n_heads", "n_layers", "vocab_size"):
        if key not in cfg:
            raise ValueError(f"config.json: missing key {key!r}")
    for key in ("d_model", "n_heads", "n_layers", "vocab_size", "n_kv_heads", "mlp_hidden_size",
                "embedding_size", "max_sequence_length"):  # fmt: skip
        v = cfg.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ValueError(f"config.json: {key}: expected a positive integer, got {v!r}")
    for key in ("mlp_ratio", "rope_theta", "rms_norm_eps"):
        v = cfg.get(key)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        if v is not None and not ok:
            raise ValueError(f"config.json: {key}: expected a positive number, got {v!r}")
    d = cfg["d_model"]
    hidden = cfg.get("mlp_hidden_size") or int((cfg.get("mlp_ratio") or 4) * d)
    try:
        return ModelConfig(
            vocab_size=int(cfg.get("embedding_size") or cfg["vocab_size"]),
            d_model=d,
            n_layers=cfg["n_layers"],
            n_heads=cfg["n_heads"],
            n_kv_heads=cfg.get("n_kv_heads") or cfg["n_heads"],
            ffn_hidden=hidden,
            max_seq_len=int(max_seq_len or cfg.get("max_sequence_length") or 4096),
            rope_theta=float(cfg.get("rope_theta") or 10000.0),
            norm_eps=float(cfg.get("rms_norm_eps") or 1e-5),
            tie_embeddings=bool(cfg.get("weight_tying", False)),
        )
    except ConfigError as e:
        raise ValueError(f"config.json: {e}") from None


def _weight_files(d: Path) -> list[Path]:
    """The safetensors files of ``d``: its index's shards (each inside ``d``) or the one file."""
    index = d / "model.safetensors.index.json"
    if index.is_file():
        where = str(index)
        weight_map = read_json_object(index, f"LLaDA checkpoint {d}").get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{where}: expected a 'weight_map' object, got {weight_map!r}")
        for s in weight_map.values():
            safe_member(d, s, where)  # a file name inside d, or CheckpointError
        files = [d / s for s in sorted(set(weight_map.values()))]
    else:
        files = [d / "model.safetensors"]
    for f in files:
        if not f.is_file():
            raise CheckpointError(f"{f}: weight file missing (expected safetensors)")
    return files


def _read_weights(d: Path, model: Transformer, device, dtype) -> dict:
    """lm_core state dict from ``d``'s safetensors, each name known and each shape as ``model``'s
    (a meta-device model of the config)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = {}
    for f in _weight_files(d):
        try:
            with safe_open(str(f), framework="pt", device=str(device)) as sf:
                for name in sf.keys():
                    lm = llada_to_lm_name(name)
                    if lm is None or lm not in expected:
                        raise CheckpointError(f"{f}: unexpected tensor {name!r}")
                    shape = tuple(sf.get_slice(name).get_shape())
                    if shape != expected[lm]:
                        raise CheckpointError(
                            f"{f}: tensor {name} has shape {shape} but config.json implies "
                            f"{expected[lm]}"
                        )
                    t = sf.get_tensor(name)
                    state[lm] = t if dtype is None else t.to(dtype)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{f}: corrupt safetensors file ({one_line(e)})") from None
    return state


def load_llada(
    dir: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    *,
    mask_id: int | None = None,
    max_seq_len: int | None = None,
) -> tuple[Transformer, dict]:
    """Load a LLaDA-format checkpoint into a :class:`Transformer` (eval mode).

    Returns ``(model, meta)`` with meta {"format": "llada", "mask_id", "eos_id", "pad_id",
    "vocab_size" (the tokenizer's), "objective": "masked", "config" (the raw dict)}. ``dtype``
    None keeps the stored dtype. Anything wrong with the files (missing, corrupt, unsupported,
    shard paths leaving ``dir``, special ids outside the vocabulary) raises one
    :class:`~lm_core.checkpoint.CheckpointError` whose one-line message names the file.
    """
    d = Path(dir)
    where = f"LLaDA checkpoint {d}"
    if not (d / "config.json").is_file():
        raise CheckpointError(f"{d}: no config.json (not a LLaDA-format checkpoint)")
    raw = read_json_object(d / "config.json", where)
    try:
        cfg = llada_config(raw, max_seq_len=max_seq_len)
    except ValueError as e:
        raise CheckpointError(f"{where}: {one_line(e)}") from None
    with torch.device("meta"):
        model = Transformer(cfg)
    state = _read_weights(d, model, device, dtype)
    missing = sorted(
        set(model.state_dict()) - set(state) - ({"lm_head.weight"} if cfg.tie_embeddings else set())
    )
    if missing:
        raise CheckpointError(
            f"{where}: weights missing for {missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    model.load_state_dict(state, strict=False, assign=True)
    model.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta).to(device)  # non-persistent buffer
    model.eval()
    mid = mask_id if mask_id is not None else raw.get("mask_token_id")
    if mid is None:
        raise CheckpointError(f"{where}: config.json has no mask_token_id; pass mask_id=")
    check_token_id(mid, cfg.vocab_size, f"{where}: mask id", optional=False)
    for key in ("eos_token_id", "pad_token_id"):
        check_token_id(raw.get(key), cfg.vocab_size, f"{where}: config.json: {key}")
    meta = {
        "format": "llada", "mask_id": int(mid), "eos_id": raw.get("eos_token_id"),
        "pad_id": raw.get("pad_token_id"), "vocab_size": raw["vocab_size"],
        "objective": "masked", "config": raw,
    }  # fmt: skip
    return model, meta


def export_llada(
    model: Transformer, dir: str | Path, *, mask_id: int, eos_id: int | None = None,
    pad_id: int | None = None, vocab_size: int | None = None,
) -> Path:  # fmt: skip
    """Write ``model`` as a LLaDA-format checkpoint (config.json + model.safetensors, each
    written atomically)."""
    c = model.cfg
    if c.causal or c.time_conditioning:
        raise ValueError("export_llada: only bidirectional models without time conditioning")
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    state = {
        lm_to_llada_name(k): v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
        if not (c.tie_embeddings and k == "lm_head.weight")
    }
    atomic_write_file(d / "model.safetensors", lambda tmp: save_file(state, str(tmp)))
    cfg = {
        "d_model": c.d_model, "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads,
        "n_layers": c.n_layers, "mlp_hidden_size": c.ffn_hidden,
        "vocab_size": vocab_size or c.vocab_size, "embedding_size": c.vocab_size,
        "rope_theta": c.rope_theta, "weight_tying": c.tie_embeddings, "rms_norm_eps": c.norm_eps,
        "max_sequence_length": c.max_seq_len, "mask_token_id": mask_id,
        "eos_token_id": eos_id, "pad_token_id": pad_id, "block_type": "llama",
        "layer_norm_type": "rms", "activation_type": "silu", "include_bias": False, "rope": True,
    }  # fmt: skip
    atomic_write_text(d / "config.json", json.dumps(cfg, indent=2))
    return d


class HFTokenizer:
    """A HuggingFace ``tokenizer.json`` with the attributes lm_core expects (mask_id, eos_id,
    pad_id, vocab_size, encode without specials, decode skipping specials)."""

    def __init__(self, tok, *, mask_id: int, eos_id: int | None, pad_id: int | None) -> None:
        self.tok = tok
        self.mask_id = mask_id
        self.eos_id = eos_id if eos_id is not None else mask_id
        self.pad_id = pad_id if pad_id is not None else self.eos_id
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_dir(cls, dir: str | Path, *, mask_id: int, eos_id=None, pad_id=None) -> HFTokenizer:
        from tokenizers import Tokenizer  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        d = Path(dir)
        raw = {}
        if (d / "config.json").is_file():
            raw = read_json_object(d / "config.json", f"LLaDA checkpoint {d}")
        try:
            tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        except Exception as e:  # noqa: BLE001 - the tokenizers library raises plain Exception
            raise CheckpointError(
                f"{d / 'tokenizer.json'}: corrupt tokenizer ({one_line(e)})"
            ) from None
        eos = eos_id if eos_id is not None else raw.get("eos_token_id")
        pad = pad_id if pad_id is not None else raw.get("pad_token_id")
        return cls(tok, mask_id=mask_id, eos_id=eos, pad_id=pad)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special: bool = True) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=skip_special)


def is_llada_dir(path: str | Path) -> bool:
    """True when ``path/config.json`` looks like a LLaDA config (not an lm_core checkpoint)."""
    f = Path(path) / "config.json"
    if not f.is_file():
        return False
    try:
        raw = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(raw, dict):
        return False
    shape_keys = ("d_model", "n_layers", "n_heads")  # an incomplete one is read as LLaDA too
    return raw.get("format") != "lm_core" and any(k in raw for k in shape_keys)


def load_any(path: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer or None, meta) from an lm_core checkpoint or a LLaDA-format directory;
    :class:`~lm_core.checkpoint.CheckpointError` (one line naming the file) if it is neither."""
    if Path(path).is_file():
        hint = " (a Lightning .ckpt is for fit's resume)" if str(path).endswith(".ckpt") else ""
        raise CheckpointError(
            f"{path}: expected a checkpoint folder (config.json + model.safetensors), got a "
            f"file{hint}"
        )
    if not is_llada_dir(path):
        return load_checkpoint(path, device)
    model, meta = load_llada(path, device)
    tok = None
    if (Path(path) / "tokenizer.json").is_file():
        tok = HFTokenizer.from_dir(path, mask_id=meta["mask_id"])
        if tok.vocab_size > model.cfg.vocab_size:
            raise CheckpointError(
                f"{Path(path) / 'tokenizer.json'}: {tok.vocab_size} ids but the model's "
                f"embedding has {model.cfg.vocab_size} rows"
            )
        for name in ("eos_id", "pad_id"):
            check_token_id(getattr(tok, name), model.cfg.vocab_size, f"{path}: tokenizer {name}")
    return model, tok, meta
