"""Text generation on top of the canvas-generic sampler loop (:func:`lm_core.sampling.denoise`).

What this layer adds to the loop, and nothing else:

- **Prompts** (strings or id lists) are left-padded with PAD into one canvas ``[B, P + N]``
  (P = longest prompt, N = generated cells). Pad cells are never attended: the model gets a bool
  attention mask ``[B, T, T]`` (True = may attend) in which every real query sees only real keys
  (a pad query sees only itself, so its softmax is defined), and RoPE positions that start at 0
  at each row's first real token. A row therefore computes what it would compute alone.
- **Per-row random numbers**: row b draws from its own generator seeded with ``seed`` (or
  ``seed[b]``), only for its own hidden cells, so each output is identical to generating that
  prompt alone with the same seed. Pass a list of seeds to draw different samples of one prompt.
- **Semi-autoregressive blocks** of ``block_length`` cells; ``steps`` is the total number of
  fixed-count steps over ``gen_length`` (``steps // n_blocks`` per block). The threshold sampler
  is dynamic: it runs until each block is full (``steps`` is validated but not a budget), so its
  NFE is reported, not set.
- **EOS**: once a row's finished block contains EOS, the rest of that row is filled with EOS and
  never sampled; generation stops when every row has ended. Variable length: with
  ``max_new_tokens > gen_length``, while some row has no EOS after ``gen_length`` cells, one more
  block of masks is appended (same steps per block) until EOS or ``max_new_tokens``.
- **Classifier-free guidance** (LLaDA): the unconditional pass sees the same canvas with every
  prompt token replaced by MASK; ``logits = uncond + (cfg_scale + 1) * (cond - uncond)``.
  ``cfg_scale = 0`` turns it off (one pass per step); otherwise each step costs two passes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lm_core.sampling.loop import check_schedule, denoise
from lm_core.sampling.policies import make_policy


@dataclass
class GenerationStats:
    """Cost of one :func:`generate` call.

    ``nfe`` counts sampler steps (denoiser calls on the whole batch); ``forward_passes`` is
    ``nfe`` times 2 with classifier-free guidance. ``tokens`` are cells committed by the
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


def _special_ids(tokenizer, mask_id, eos_id, pad_id) -> tuple[int, int, int]:
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


def check_generation_args(
    *, gen_length, block_length, steps, tau, cfg_scale, max_new_tokens, longest_prompt, max_seq_len
) -> int:
    """Validate the generation settings (ValueError naming the field); returns the cell budget."""
    for name, v in (("gen_length", gen_length), ("block_length", block_length), ("steps", steps)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    check_schedule(gen_length, block_length, steps)
    if not (0.0 < tau <= 1.0):
        raise ValueError(f"tau: expected a number in (0, 1], got {tau}")
    if cfg_scale < 0:
        raise ValueError(f"cfg_scale: expected >= 0, got {cfg_scale}")
    budget = gen_length if max_new_tokens is None else max_new_tokens
    if max_new_tokens is not None and (
        max_new_tokens < gen_length or (max_new_tokens - gen_length) % block_length
    ):
        raise ValueError(
            f"max_new_tokens={max_new_tokens} must be gen_length={gen_length} plus a whole "
            f"number of blocks of block_length={block_length}"
        )
    if longest_prompt + budget > max_seq_len:
        raise ValueError(
            f"prompt: {longest_prompt} prompt tokens + {budget} new tokens exceed the model's "
            f"context (max_seq_len={max_seq_len})"
        )
    return budget


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


def guided_model_fn(model, *, cfg_scale: float, mask_id: int):
    """``f(x, attn_mask, positions, prompt_mask) -> logits [B, T, V]`` with optional CFG."""

    def fn(x, *, attn_mask=None, positions=None, prompt_mask=None):
        if cfg_scale <= 0:
            return model(x, attn_mask=attn_mask, positions=positions).float()
        uncond_x = x.masked_fill(prompt_mask, mask_id)
        two = lambda t: None if t is None else torch.cat([t, t])  # noqa: E731
        logits = model(
            torch.cat([x, uncond_x]), attn_mask=two(attn_mask), positions=two(positions)
        ).float()
        cond, uncond = logits.chunk(2)
        return uncond + (cfg_scale + 1.0) * (cond - uncond)

    return fn


def eos_fill_callback(eos_id: int, mask_id: int, block_length: int):
    """``on_block_end`` for :func:`denoise`: rows whose finished blocks hold EOS get the rest of
    their editable cells set to EOS (in place); returns True when every row has ended."""

    def on_block_end(x: Tensor, editable: Tensor, b: int) -> bool:
        rank = editable.long().cumsum(-1) - 1
        done_cells = editable & (rank < (b + 1) * block_length)
        ended = ((x == eos_id) & done_cells).any(-1)
        fill = ended[:, None] & editable & (x == mask_id)
        x.masked_fill_(fill, eos_id)
        return bool(ended.all())

    return on_block_end


def _generators(seed, B: int, device) -> list[torch.Generator]:
    seeds = [seed] * B if seed is None or isinstance(seed, int) else list(seed)
    if len(seeds) != B:
        raise ValueError(f"seed: expected an int or {B} seeds, got {len(seeds)}")
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(0 if s is None else int(s))
        gens.append(g)
    return gens


def _cut_at_eos(seq: Tensor, eos_id: int) -> list[list[int]]:
    out = []
    for row in seq.tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


def _run_phase(fn, x, editable, valid, prompt_mask, *, steps, block_length, ids, policy, gens):
    """One :func:`denoise` call over ``editable`` cells with the text conditioning."""
    mask_id, eos_id = ids
    cond = attention_inputs(valid)
    cond["prompt_mask"] = prompt_mask
    return denoise(
        fn,
        x,
        editable,
        mask_id=mask_id,
        policy=policy,
        steps=steps,
        block_length=block_length,
        cond=cond,
        generator=gens,
        on_block_end=eos_fill_callback(eos_id, mask_id, block_length),
    )


def generate(
    model,
    tokenizer,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    gen_length: int = 128,
    block_length: int = 32,
    steps: int | None = None,
    sampler: str = "low_confidence",
    policy=None,
    temperature: float = 0.0,
    tau: float = 0.9,
    confidence: str = "prob",
    cfg_scale: float = 0.0,
    max_new_tokens: int | None = None,
    seed: int | Sequence[int] | None = 0,
    mask_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> GenerationResult:
    """Generate a continuation of each prompt with a masked diffusion LM.

    Args:
        model: a :class:`lm_core.Transformer` (or any module with ``cfg.max_seq_len`` taking
            ``(ids [B, T], attn_mask=, positions=)`` and returning logits [B, T, V]).
        tokenizer: encodes string prompts and decodes outputs; may be None with id prompts and
            explicit ``mask_id``/``eos_id``/``pad_id`` (which otherwise override the tokenizer's).
        prompts: B strings or B lists of ids, of any lengths (none empty).
        gen_length: cells generated before variable-length extension; a multiple of block_length.
        steps: total sampler steps over gen_length, a multiple of the number of blocks
            (default gen_length: one token per step).
        sampler: ``low_confidence``, ``threshold`` or ``random`` (ignored if ``policy`` given);
            ``dmax`` hands over to :func:`lm_core.dmax.dmax_generate` (soft parallel decoding,
            its frontier threshold is ``tau``; ``steps`` is not used).
        temperature: Gumbel-max temperature (0 = greedy). tau: threshold in (0, 1].
        confidence: ``prob``, ``margin``, ``entropy`` or ``random`` (ordering score).
        cfg_scale: classifier-free guidance weight (0 = off).
        max_new_tokens: variable-length cap (None = exactly gen_length cells).
        seed: int (every row uses it) or one seed per row.

    Returns:
        :class:`GenerationResult` with texts, ids, the raw cells [B, N] and the cost.
    """
    if policy is None and sampler == "dmax":  # soft parallel decoding needs inputs_embeds
        from lm_core.dmax import dmax_generate

        if cfg_scale > 0 or max_new_tokens is not None or temperature > 0:
            raise ValueError("sampler dmax: greedy, fixed length, no cfg (see lm_core.dmax)")
        return dmax_generate(
            model, tokenizer, prompts, gen_length=gen_length, block_length=block_length,
            tau=tau, mask_id=mask_id, eos_id=eos_id, pad_id=pad_id,
        )  # fmt: skip
    mask_id, eos_id, pad_id = _special_ids(tokenizer, mask_id, eos_id, pad_id)
    ids = encode_prompts(tokenizer, prompts)
    steps = gen_length if steps is None else steps
    budget = check_generation_args(
        gen_length=gen_length, block_length=block_length, steps=steps, tau=tau,
        cfg_scale=cfg_scale, max_new_tokens=max_new_tokens,
        longest_prompt=max(len(p) for p in ids), max_seq_len=model.cfg.max_seq_len,
    )  # fmt: skip
    if policy is None:
        policy = make_policy(sampler, temperature=temperature, tau=tau, confidence=confidence)
    device = next(model.parameters()).device
    B = len(ids)
    gens = _generators(seed, B, device)
    fn = guided_model_fn(model, cfg_scale=cfg_scale, mask_id=mask_id)
    prompt_x, valid = left_pad(ids, pad_id, device)
    P = prompt_x.shape[1]
    new = lambda n, v: torch.full((B, n), v, dtype=torch.long, device=device)  # noqa: E731
    x = torch.cat([prompt_x, new(gen_length, mask_id)], dim=1)
    valid = torch.cat([valid, new(gen_length, 1).bool()], dim=1)
    prompt_mask = valid.clone()
    prompt_mask[:, P:] = False
    stats = GenerationStats(rows=B)
    kw = dict(block_length=block_length, ids=(mask_id, eos_id), policy=policy, gens=gens)
    t0 = time.perf_counter()
    x, s = _run_phase(fn, x, ~prompt_mask & valid, valid, prompt_mask, steps=steps, **kw)
    _add(stats, s)
    per_block = steps // (gen_length // block_length)
    while x.shape[1] - P < budget and not bool((x[:, P:] == eos_id).any(-1).all()):
        ended = (x[:, P:] == eos_id).any(-1, keepdim=True)
        block = torch.where(ended, new(block_length, eos_id), new(block_length, mask_id))
        x = torch.cat([x, block], dim=1)
        valid = torch.cat([valid, new(block_length, 1).bool()], dim=1)
        prompt_mask = torch.cat([prompt_mask, new(block_length, 0).bool()], dim=1)
        editable = torch.zeros_like(valid)
        editable[:, -block_length:] = True
        x, s = _run_phase(fn, x, editable, valid, prompt_mask, steps=per_block, **kw)
        _add(stats, s)
    stats.seconds = time.perf_counter() - t0
    stats.forward_passes = stats.nfe * (2 if cfg_scale > 0 else 1)
    seq = x[:, P:]
    token_ids = _cut_at_eos(seq, eos_id)
    texts = None if tokenizer is None else [tokenizer.decode(t) for t in token_ids]
    return GenerationResult(texts=texts, token_ids=token_ids, sequences=seq, stats=stats)


def _add(stats: GenerationStats, s) -> None:
    stats.nfe += s.nfe
    stats.tokens += s.committed
    stats.per_block_nfe.extend(s.per_block_nfe)
