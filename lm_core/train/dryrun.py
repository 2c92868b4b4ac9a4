"""``lm-core fit --dry-run``: build the configured model on the meta device, count it and print
the memory a training step takes per GPU (:mod:`lm_core.train.estimate`), then exit.

Nothing is trained, no data is read (unless ``model.vocab_size`` is null and only the data's
tokenizer can say it), no weights are allocated.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from lm_core.config import ConfigError, ModelConfig
from lm_core.nn.transformer import Transformer
from lm_core.text.llada import is_llada_dir, llada_config
from lm_core.train.estimate import estimate_memory, report
from lm_core.train.sharding import is_fsdp
from lm_core.train.throughput import flops_per_token


def world_size(trainer) -> int:
    """Ranks of the run: ``devices`` (visible GPUs when "auto") times ``num_nodes``."""
    devices = trainer.devices
    if not isinstance(devices, int):
        devices = max(torch.cuda.device_count(), 1) if str(devices) == "auto" else devices
    if isinstance(devices, str):
        parts = [p for p in devices.split(",") if p.strip()]
        devices = int(devices) if devices.isdigit() else len(parts)
    return max(int(devices), 1) * trainer.num_nodes


def model_config(cfg) -> ModelConfig:
    """The run's model shape: ``init_from``'s (lm_core or LLaDA config.json), else the model
    section with ``vocab_size`` from the data's tokenizer when it is null."""
    init_from = getattr(cfg, "init_from", None)
    if init_from:
        file = Path(init_from) / "config.json"
        if not file.is_file():
            raise ConfigError(f"init_from: {file} does not exist")
        raw = json.loads(file.read_text())
        return llada_config(raw) if is_llada_dir(init_from) else ModelConfig.from_dict(raw["model"])
    model = cfg.model
    if model.vocab_size is None:
        dm = cfg.data
        kind = getattr(dm, "tokenizer_kind", None)
        if kind == "byte":
            vocab = 259
        elif kind == "bpe":
            vocab = dm.bpe_vocab_size
        else:  # only the data's tokenizer knows
            dm.prepare_data()
            dm.setup("fit")
            vocab = dm.tokenizer.vocab_size
        model = dataclasses.replace(model, vocab_size=vocab)
    return model


def tokens_per_gpu(cfg) -> int:
    """Tokens of one micro-batch: a packed row's ``data.token_budget``, or a padded batch's
    ``batch_size`` rows of ``token_budget`` (``max_len``) tokens."""
    dm = cfg.data
    length = getattr(dm, "token_budget", None) or getattr(dm, "max_len", None)
    if length is None:
        raise ConfigError("--dry-run: the data module names no token_budget or max_len")
    if getattr(dm, "packed", False):
        return int(length)
    return int(length) * int(getattr(dm, "batch_size", 1))


def dry_run(cfg, gpu_gib: float | None = None) -> list[str]:
    """The lines ``lm-core fit --dry-run`` prints for an instantiated config namespace."""
    t = cfg.trainer
    mcfg = model_config(cfg)
    with torch.device("meta"):
        net = Transformer(mcfg)
    n, n_ne = net.num_parameters(), net.num_parameters(exclude_embeddings=True)
    world, fsdp = world_size(t), is_fsdp(t.strategy)
    precision = t.precision
    if precision == "auto":
        precision = "bf16-mixed" if t.accelerator in ("gpu", "cuda") or fsdp else "32-true"
    bf16 = str(precision).startswith("bf16")
    tokens = tokens_per_gpu(cfg)
    est = estimate_memory(
        mcfg,
        n,
        tokens=tokens,
        world=world,
        fsdp=fsdp,
        bf16=bf16,
        activation_checkpointing=t.activation_checkpointing,
        ce_chunk=cfg.objective.ce_chunk,
    )
    if gpu_gib is None and torch.cuda.is_available():
        gpu_gib = torch.cuda.get_device_properties(0).total_memory / 1024**3
    strategy = "fsdp (FSDP2, one unit per block)" if fsdp else str(t.strategy)
    ckpt = "on" if t.activation_checkpointing else "off"
    return [
        f"model: {n:,} parameters ({n_ne:,} without embeddings), built on the meta device",
        f"  {mcfg.n_layers} layers, d_model {mcfg.d_model}, {mcfg.n_heads} heads / "
        f"{mcfg.n_kv_heads} KV heads, ffn {mcfg.ffn_hidden}, vocab {mcfg.vocab_size}",
        f"run: {world} rank(s), strategy {strategy}, precision {precision}, "
        f"{tokens} tokens per GPU, activation checkpointing {ckpt}, "
        f"ce_chunk {cfg.objective.ce_chunk}",
        f"training FLOPs per token: {flops_per_token(mcfg, tokens, 0.5):.3e} "
        "(half the positions masked on average)",
        *report(est, gpu_gib),
        "activations count every position masked (the worst step); see lm_core.train.estimate",
    ]
