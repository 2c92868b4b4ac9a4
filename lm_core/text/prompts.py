"""Prompts and results of text generation: encoding, left padding, attention inputs, EOS cuts.

- **Prompts** (strings or id lists) are left-padded with PAD into one canvas ``[B, P + N]``
  (P = longest prompt, N = generated cells). Pad cells are never attended: the model gets a bool
  attention mask ``[B, T, T]`` (True = may attend) in which every real query sees only real keys
  (a pad query sees only itself, so its softmax is defined), and RoPE positions that start at 0
  at each row's first real token. A row therefore computes what it would compute alone.
- **Per-row random numbers**: row b draws from its own generator (:func:`row_generators`), only
  for its own hidden cells, so each output is identical to generating that prompt alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class GenerationStats:
    """Cost of one :func:`generate` call.

    ``nfe`` counts sampler steps (denoiser calls on the whole batch); ``forward_passes`` counts
    model runs: ``nfe`` times 2 with classifier-free guidance, plus one run per finished block
    with a block-causal model's cache (its keys and values, :mod:`lm_core.solvers.cache`). ``tokens`` are cells committed by the
    sampler over all rows (EOS fill after the end is not counted).
    """

    nfe: int = 0
    forward_passes: int = 0
    tokens: int = 0
    rows: int = 1
    seconds: float = 0.0
    per_block_nfe: list[int] = field(default_factory=list)

    @property
    def tpf(self) -> float:
        """Tokens per forward pass: committed tokens per row / nfe."""
        return self.tokens / max(self.rows, 1) / max(self.nfe, 1)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


@dataclass
class GenerationResult:
    """``texts`` (None without a tokenizer), ``token_ids`` (each row's generated ids, cut before
    its first EOS), ``sequences`` [B, N] (the raw generated cells, EOS-filled after the end) and
    ``stats``."""

    texts: list[str] | None
    token_ids: list[list[int]]
    sequences: Tensor
    stats: GenerationStats


def special_ids(tokenizer, mask_id=None, eos_id=None, pad_id=None) -> tuple[int, int, int]:
    """(mask_id, eos_id, pad_id): each given id, else the tokenizer's; ValueError if neither."""
    ids = {"mask_id": mask_id, "eos_id": eos_id, "pad_id": pad_id}
    for name in ids:
        if ids[name] is None:
            if tokenizer is None or getattr(tokenizer, name, None) is None:
                raise ValueError(f"{name}: give it, or a tokenizer that has it")
            ids[name] = int(getattr(tokenizer, name))
    return ids["mask_id"], ids["eos_id"], ids["pad_id"]


def encode_prompts(tokenizer, prompts: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
    """Prompts (strings need a tokenizer) -> lists of ids; empty prompts are a ValueError."""
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or len(prompts) == 0:
        raise ValueError("prompts: expected a non-empty list of strings or of id lists")
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            if tokenizer is None:
                raise ValueError(f"prompts[{i}]: a string prompt needs a tokenizer")
            ids = list(tokenizer.encode(p))
        else:
            ids = [int(v) for v in p]
        if len(ids) == 0:
            raise ValueError(f"prompts[{i}]: empty prompt")
        out.append(ids)
    return out


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[Tensor, Tensor]:
    """Left-pad prompts: ids [B, P] and bool ``valid`` [B, P] (False at pad cells)."""
    P = max(len(p) for p in prompts)
    x = torch.full((len(prompts), P), pad_id, dtype=torch.long, device=device)
    valid = torch.zeros(len(prompts), P, dtype=torch.bool, device=device)
    for b, p in enumerate(prompts):
        x[b, P - len(p) :] = torch.tensor(p, dtype=torch.long, device=device)
        valid[b, P - len(p) :] = True
    return x, valid


def attention_inputs(valid: Tensor) -> dict:
    """bool ``valid`` [B, T] -> {"attn_mask": [B, T, T] or None, "positions": [B, T] or None}.

    Real queries attend to real keys only; a pad query attends to itself. Positions count real
    tokens from 0. Without padding both are None (the model's defaults, same values).
    """
    if bool(valid.all()):
        return {"attn_mask": None, "positions": None}
    T = valid.shape[1]
    eye = torch.eye(T, dtype=torch.bool, device=valid.device)
    attn_mask = valid[:, None, :] | eye[None]
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    return {"attn_mask": attn_mask, "positions": positions}


def row_generators(seed, B: int, device) -> list[torch.Generator]:
    """One generator per row, seeded with ``seed`` (an int or None: all rows) or ``seed[b]``."""
    seeds = [seed] * B if seed is None or isinstance(seed, int) else list(seed)
    if len(seeds) != B:
        raise ValueError(f"seed: expected an int or {B} seeds, got {len(seeds)}")
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(0 if s is None else int(s))
        gens.append(g)
    return gens


def cut_at_eos(seq: Tensor, eos_id: int, stop_ids: Sequence[int] = ()) -> list[list[int]]:
    """Each row of ``seq`` [B, N] as a list of ids, cut before its first ``eos_id`` or stop id."""
    ends = {int(eos_id), *map(int, stop_ids)}
    out = []
    for row in seq.tolist():
        cut = next((i for i, t in enumerate(row) if t in ends), len(row))
        out.append(row[:cut])
    return out


def check_stop_ids(stop_ids: Sequence[int] | None, vocab_size: int, name: str = "stop_ids"):
    """Stop ids as a tuple of ints; ValueError naming ``name`` and the vocabulary size for an id
    outside ``0 .. vocab_size - 1`` (an instruct model's end-of-turn id, e.g. LLaDA's 126348)."""
    out = tuple(int(i) for i in stop_ids or ())
    for i in out:
        if not 0 <= i < vocab_size:
            raise ValueError(
                f"{name}: {i} is outside the model's vocabulary (vocab_size {vocab_size}: ids "
                f"0..{vocab_size - 1})"
            )
    return out


def cut_at_stop(text: str, stop: Sequence[str] = ()) -> str:
    """``text`` cut before the earliest occurrence of any stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]
