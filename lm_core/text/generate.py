"""Text generation on top of the canvas-generic sampler loop (:func:`lm_core.solvers.denoise`).

What this layer adds to the loop, and nothing else:

- **Prompts** are left-padded into one canvas with an attention mask and positions such that a
  row computes what it would compute alone (:mod:`lm_core.text.prompts`).
- **Per-row random numbers**: row b draws from its own generator seeded with ``seed`` (or
  ``seed[b]``), so each output is identical to generating that prompt alone with the same seed.
  Pass a list of seeds to draw different samples of one prompt.
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
- **DMax** (:func:`dmax_generate`, or ``sampler="dmax"``): soft parallel decoding
  (:mod:`lm_core.solvers.soft`) on the same left-padded canvas.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor

from lm_core.solvers.cache import BlockForward, check_cache_mode
from lm_core.solvers.loop import check_schedule, denoise
from lm_core.solvers.policies import make_policy
from lm_core.solvers.soft import check_soft_args, soft_denoise
from lm_core.text.prompts import (
    GenerationResult,
    GenerationStats,
    attention_inputs,
    check_stop_ids,
    cut_at_eos,
    cut_at_stop,
    encode_prompts,
    left_pad,
    row_generators,
    special_ids,
)


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


def eos_fill_callback(eos_id: int, mask_id: int, block_length: int, stop_ids=(), stop_text=None):
    """``on_block_end`` for :func:`denoise`: rows whose finished blocks hold EOS (or a stop id, or,
    with ``stop_text(ids) -> bool``, a stop string) get the rest of their editable cells set to
    EOS (in place); returns True when every row has ended."""
    ends = torch.tensor([eos_id, *stop_ids])

    def on_block_end(x: Tensor, editable: Tensor, b: int) -> bool:
        rank = editable.long().cumsum(-1) - 1
        done_cells = editable & (rank < (b + 1) * block_length)
        ended = (torch.isin(x, ends.to(x.device)) & done_cells).any(-1)
        if stop_text is not None:
            for r in (~ended).nonzero().squeeze(-1).tolist():
                ended[r] = stop_text(x[r][done_cells[r]].tolist())
        fill = ended[:, None] & editable & (x == mask_id)
        x.masked_fill_(fill, eos_id)
        return bool(ended.all())

    return on_block_end


def _model_fn(model, cache, cfg_scale, mask_id, block_length):
    """``f(valid, prompt_len)``: the denoiser call of one phase. Bidirectional and uncached: the
    whole canvas with CFG (:func:`guided_model_fn`); cached or block-causal: a windowed
    :class:`~lm_core.solvers.cache.BlockForward` (logits of the active block only)."""
    check_cache_mode(cache)
    if cache == "none" and not getattr(model.cfg, "block_causal", 0):
        fn = guided_model_fn(model, cfg_scale=cfg_scale, mask_id=mask_id)
        return lambda valid, prompt_len: fn
    if cfg_scale > 0:
        raise ValueError(
            "cfg_scale: classifier-free guidance runs on a bidirectional model without a "
            f"cache (got cache={cache!r}, block_causal={getattr(model.cfg, 'block_causal', 0)})"
        )
    return lambda valid, prompt_len: BlockForward(
        model, cache, valid=valid, prompt_len=prompt_len, block_length=block_length
    )


def _run_phase(make_fn, x, editable, valid, prompt_mask, *, steps, block_length, ids, policy,
               gens, prompt_len, on_end):  # fmt: skip
    """One :func:`denoise` call over ``editable`` cells with the text conditioning."""
    mask_id, eos_id = ids
    fn = make_fn(valid, prompt_len)
    cond = {}
    if not getattr(fn, "windowed", False):
        cond = attention_inputs(valid)
        cond["prompt_mask"] = prompt_mask
    x, s = denoise(
        fn,
        x,
        editable,
        mask_id=mask_id,
        policy=policy,
        steps=steps,
        block_length=block_length,
        cond=cond,
        generator=gens,
        on_block_end=on_end,
    )
    s.passes = getattr(fn, "passes", s.nfe)  # model runs (a block-causal cache adds some)
    return x, s


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
    cache: str = "none",
    stop_ids: Sequence[int] | None = None,
    stop: Sequence[str] | None = None,
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
            ``dmax`` hands over to :func:`dmax_generate` (soft parallel decoding,
            its frontier threshold is ``tau``; ``steps`` is not used).
        temperature: Gumbel-max temperature (0 = greedy). tau: threshold in (0, 1].
        confidence: ``prob``, ``margin``, ``entropy`` or ``random`` (ordering score).
        cfg_scale: classifier-free guidance weight (0 = off).
        max_new_tokens: variable-length cap (None = exactly gen_length cells).
        seed: int (every row uses it) or one seed per row.
        cache: ``none``, ``prefix`` or ``dual`` (:mod:`lm_core.solvers.cache`): logits of the
            active block only, keys and values of the rest reused (exact for a block-causal
            model, a per-block refreshed approximation for a bidirectional one).
        stop_ids: ids that end a row as EOS does (an instruct model's end of turn).
        stop: strings that end a row (checked at block ends) and cut its text.

    Returns:
        :class:`GenerationResult` with texts, ids, the raw cells [B, N] and the cost.
    """
    if policy is None and sampler == "dmax":  # soft parallel decoding needs inputs_embeds
        if cfg_scale > 0 or max_new_tokens is not None or temperature > 0:
            raise ValueError("sampler dmax: greedy, fixed length, no cfg (see dmax_generate)")
        return dmax_generate(
            model, tokenizer, prompts, gen_length=gen_length, block_length=block_length,
            tau=tau, mask_id=mask_id, eos_id=eos_id, pad_id=pad_id, cache=cache,
            stop_ids=stop_ids, stop=stop,
        )  # fmt: skip
    mask_id, eos_id, pad_id = special_ids(tokenizer, mask_id, eos_id, pad_id)
    stop_ids = check_stop_ids(stop_ids, model.cfg.vocab_size) if stop_ids else ()
    stop = tuple(stop or ())
    if stop and tokenizer is None:
        raise ValueError("stop: stop strings need a tokenizer")
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
    gens = row_generators(seed, B, device)
    make_fn = _model_fn(model, cache, cfg_scale, mask_id, block_length)
    prompt_x, valid = left_pad(ids, pad_id, device)
    P = prompt_x.shape[1]
    new = lambda n, v: torch.full((B, n), v, dtype=torch.long, device=device)  # noqa: E731
    x = torch.cat([prompt_x, new(gen_length, mask_id)], dim=1)
    valid = torch.cat([valid, new(gen_length, 1).bool()], dim=1)
    prompt_mask = valid.clone()
    prompt_mask[:, P:] = False
    stats = GenerationStats(rows=B)
    stop_text = None
    if stop:
        stop_text = lambda t: any(w in tokenizer.decode(t) for w in stop)  # noqa: E731
    on_end = eos_fill_callback(eos_id, mask_id, block_length, stop_ids, stop_text)
    kw = dict(block_length=block_length, ids=(mask_id, eos_id), policy=policy, gens=gens,
              prompt_len=P, on_end=on_end)  # fmt: skip
    t0 = time.perf_counter()
    x, s = _run_phase(make_fn, x, ~prompt_mask & valid, valid, prompt_mask, steps=steps, **kw)
    _add(stats, s)
    per_block = steps // (gen_length // block_length)
    x = _extend(make_fn, x, valid, prompt_mask, stats, start=P, budget=budget, steps=per_block,
                ends=(eos_id, *stop_ids), **kw)  # fmt: skip
    stats.seconds = time.perf_counter() - t0
    if cfg_scale > 0:
        stats.forward_passes = stats.nfe * 2
    seq = x[:, P:]
    token_ids = cut_at_eos(seq, eos_id, stop_ids)
    texts = (
        None if tokenizer is None else [cut_at_stop(tokenizer.decode(t), stop) for t in token_ids]
    )
    return GenerationResult(texts=texts, token_ids=token_ids, sequences=seq, stats=stats)


def _add(stats: GenerationStats, s) -> None:
    stats.nfe += s.nfe
    stats.forward_passes += s.passes
    stats.tokens += s.committed
    stats.per_block_nfe.extend(s.per_block_nfe)


def _extend(make_fn, x, valid, prompt_mask, stats, *, start, budget, steps, ends, **kw) -> Tensor:
    """Variable length: while some row of ``x`` [B, T] has no EOS (or other id of ``ends``) after
    column ``start`` and the ``budget`` of new cells allows, append a block of masks (EOS for
    ended rows) and sample it with ``steps`` steps. Returns the longer canvas; ``stats`` is
    updated in place."""
    B, device = x.shape[0], x.device
    block_length, (mask_id, eos_id) = kw["block_length"], kw["ids"]
    new = lambda n, v: torch.full((B, n), v, dtype=torch.long, device=device)  # noqa: E731
    end_t = torch.tensor(ends, device=device)
    has_end = lambda: torch.isin(x[:, start:], end_t).any(-1, keepdim=True)  # noqa: E731
    while x.shape[1] - start < budget and not bool(has_end().all()):
        ended = has_end()
        block = torch.where(ended, new(block_length, eos_id), new(block_length, mask_id))
        x = torch.cat([x, block], dim=1)
        valid = torch.cat([valid, new(block_length, 1).bool()], dim=1)
        prompt_mask = torch.cat([prompt_mask, new(block_length, 0).bool()], dim=1)
        editable = torch.zeros_like(valid)
        editable[:, -block_length:] = True
        x, s = _run_phase(make_fn, x, editable, valid, prompt_mask, steps=steps, **kw)
        _add(stats, s)
    return x


@torch.no_grad()
def dmax_generate(
    model,
    tokenizer,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    gen_length: int = 128,
    block_length: int = 32,
    tau: float = 0.5,
    stop_conf: float = 0.9,
    max_steps_per_block: int | None = None,
    soft: bool = True,
    mask_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
    cache: str = "none",
    stop_ids: Sequence[int] | None = None,
    stop: Sequence[str] | None = None,
) -> GenerationResult:
    """Soft parallel decoding (DMax, :func:`lm_core.solvers.soft.soft_denoise`) of a
    continuation of each prompt; greedy (top-1).

    Batched: prompts are left-padded as in :func:`generate` (the same attention mask and
    positions) and a row's result equals decoding it alone. ``stats.nfe`` counts model calls on
    the batch (per row when B = 1); ``stats.tokens`` the cells decoded (EOS fill after a row's end
    excluded). No classifier-free guidance and no variable-length extension (use
    :func:`generate` for those).

    Args:
        model: a :class:`lm_core.Transformer` (needs ``tok_emb`` and ``inputs_embeds``).
        tokenizer: for string prompts and decoding; may be None with id prompts and explicit ids.
        tau: frontier threshold (cells with p >= tau are taken left to right in one step).
        stop_conf: a block ends when every cell has p >= stop_conf (or nothing changed).
        max_steps_per_block: safety bound on model calls per block (default 2 * block_length).
        soft: feed decoded cells back as soft embeddings (DMax); False feeds their hard top-1
            token instead (an ablation: hard self-correction with the same frontier and stops).
        cache, stop_ids, stop: as in :func:`generate` (stop strings only cut the texts here).
    """
    mask_id, eos_id, pad_id = special_ids(tokenizer, mask_id, eos_id, pad_id)
    stop_ids = check_stop_ids(stop_ids, model.cfg.vocab_size) if stop_ids else ()
    ids = encode_prompts(tokenizer, prompts)
    check_soft_args(
        gen_length, block_length, tau, stop_conf, max(map(len, ids)), model.cfg.max_seq_len
    )
    device = next(model.parameters()).device
    prompt_x, valid = left_pad(ids, pad_id, device)
    B, P = prompt_x.shape
    x = torch.cat([prompt_x, prompt_x.new_full((B, gen_length), mask_id)], dim=1)
    valid = torch.cat([valid, valid.new_ones(B, gen_length)], dim=1)
    forward = None
    if check_cache_mode(cache) != "none" or getattr(model.cfg, "block_causal", 0):
        forward = BlockForward(model, cache, valid=valid, prompt_len=P, block_length=block_length)
    t0 = time.perf_counter()
    x, s = soft_denoise(
        model, x, attention_inputs(valid), start=P, block_length=block_length, mask_id=mask_id,
        eos_id=eos_id, tau=tau, stop_conf=stop_conf, max_steps_per_block=max_steps_per_block,
        soft=soft, forward=forward, stop_ids=stop_ids,
    )  # fmt: skip
    stats = GenerationStats(rows=B, nfe=s.nfe, tokens=s.tokens, per_block_nfe=s.per_block_nfe)
    stats.seconds = time.perf_counter() - t0
    stats.forward_passes = stats.nfe if forward is None else forward.passes
    seq = x[:, P:]
    token_ids = cut_at_eos(seq, eos_id, stop_ids)
    texts = None
    if tokenizer is not None:
        texts = [cut_at_stop(tokenizer.decode(t), stop or ()) for t in token_ids]
    return GenerationResult(texts=texts, token_ids=token_ids, sequences=seq, stats=stats)
