"""``lm-core generate``: sample text from a checkpoint and report its cost.

    lm-core generate --ckpt DIR --prompt TEXT [--sampler low_confidence|threshold|random|dmax]
        [--gen-length N --block-length N --steps N --tau X --temperature X --cfg X
         --confidence prob|margin|entropy|random --max-new-tokens N --seed N --device D
         --cache none|prefix|dual --stop-id ID (repeatable) --stop TEXT (repeatable)]
    lm-core generate --ckpt DIR --prompts SFT.jsonl --out ANSWERS.jsonl [--batch-size N ...]

Prints the generated text, then one line with NFE, tokens per forward (TPF), wall-clock and
tokens per second. ``--cache prefix|dual`` reuses keys and values across the steps of a block
(Fast-dLLM; exact for a block-causal checkpoint, see :mod:`lm_core.solvers.cache`).
``--stop-id`` ends a row at that id as at EOS (LLaDA-8B-Instruct ends turns with 126348, not
its EOS 126081); ``--stop`` cuts the text at a string. With ``--prompts`` (an SFT file: ``{"prompt", "response"}`` or
``{"messages"}`` lines) the model answers every example's prompt, rendered with the SFT chat
template, and ``--out`` gets the same examples with the model's answers as their responses:
self-distilled SFT data, which is what the DMax reference fine-tunes on (``lm-core fit`` with
``objective.kind: dmax`` and an SFT data module on that file). ``--ckpt`` is an lm_core
checkpoint or a LLaDA-format directory. A flow checkpoint (``objective: flow``) takes
``--sampler euler|sde`` (``--churn``), ``--steps`` (its NFE, default 32) and ``--cfg`` (see
:mod:`lm_core.solvers.flow`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lm_core.checkpoint import atomic_write_text, ensure_writable
from lm_core.data.sft import answer_prompt, read_jsonl, with_answer
from lm_core.flow.model import is_flow_checkpoint, load_flow_checkpoint
from lm_core.solvers.cache import CACHE_MODES
from lm_core.solvers.flow import SAMPLERS as FLOW_SAMPLERS
from lm_core.solvers.policies import CONFIDENCES, SAMPLERS
from lm_core.text.flow import generate_flow
from lm_core.text.generate import generate
from lm_core.text.llada import load_any
from lm_core.text.prompts import check_stop_ids


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lm-core generate", description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="checkpoint directory")
    p.add_argument("--prompt", action="append", help="prompt text (repeatable)")
    p.add_argument(
        "--prompts",
        default=None,
        help="SFT JSONL whose prompts the model answers (the references are ignored); needs --out",
    )
    p.add_argument(
        "--out", default=None, help="with --prompts: JSONL of the examples with the model's answers"
    )
    p.add_argument("--batch-size", type=int, default=32, help="with --prompts: prompts per call")
    p.add_argument(
        "--sampler",
        default="low_confidence",
        help=f"one of {(*SAMPLERS, 'dmax')} (dmax: soft parallel decoding, lm_core.solvers.soft)",
    )
    p.add_argument(
        "--gen-length", type=int, default=64, help="generated tokens (multiple of block)"
    )
    p.add_argument(
        "--block-length", type=int, default=None, help="block size (default min(32, gen))"
    )
    p.add_argument("--steps", type=int, default=None, help="total steps (default gen-length)")
    p.add_argument(
        "--tau", type=float, default=0.9, help="threshold sampler's confidence in (0, 1]"
    )
    p.add_argument("--temperature", type=float, default=0.0, help="Gumbel temperature (0 = greedy)")
    p.add_argument("--confidence", default="prob", help=f"ordering score, one of {CONFIDENCES}")
    p.add_argument("--cfg", type=float, default=0.0, help="classifier-free guidance scale")
    p.add_argument(
        "--churn", type=float, default=0.5, help="flow checkpoints: share of fresh noise (sde)"
    )
    p.add_argument("--max-new-tokens", type=int, default=None, help="variable-length cap")
    p.add_argument(
        "--cache", default="none", choices=CACHE_MODES, help="key/value cache across steps"
    )
    p.add_argument(
        "--stop-id", type=int, action="append", default=None, help="id that ends a row (repeatable)"
    )
    p.add_argument("--stop", action="append", default=None, help="string that ends a row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.prompt is None) == (args.prompts is None):
        parser.error("give the prompts as --prompt TEXT (repeatable) or --prompts FILE, not both")
    if (args.prompts is None) != (args.out is None):
        parser.error("--prompts and --out go together (answers are written to --out)")
    if args.batch_size <= 0:
        parser.error(f"--batch-size: expected a positive integer, got {args.batch_size}")
    if args.out is not None:  # before sampling, not after it
        ensure_writable(Path(args.out).parent)
        if Path(args.out).is_dir():
            parser.error(f"--out: {args.out} is a folder; expected a file name")
    if is_flow_checkpoint(args.ckpt):  # flow LM: --sampler euler|sde, --steps, --cfg, --churn
        if args.prompts is not None:
            parser.error("--prompts: masked checkpoints only (not a flow model)")
        if args.cache != "none" or args.stop_id or args.stop:
            parser.error("--cache, --stop-id, --stop: masked checkpoints only (not a flow model)")
        return _flow(args)
    model, tok, meta = load_any(args.ckpt, args.device)
    if tok is None:
        raise FileNotFoundError(f"{args.ckpt}: no tokenizer in the checkpoint")
    args.stop_id = check_stop_ids(args.stop_id, model.cfg.vocab_size, name="--stop-id")
    if args.prompts is not None:
        return _answer_file(args, model, tok, meta)
    res = _sample(args, model, tok, meta, args.prompt)
    for text in res.texts:
        print(text)
    s = res.stats
    print(
        f"# sampler={args.sampler} cache={args.cache} nfe={s.nfe} "
        f"forward_passes={s.forward_passes} tpf={s.tpf:.2f} seconds={s.seconds:.3f} tokens_per_s={s.tokens_per_second:.1f}"
    )
    return 0


def _sample(args, model, tok, meta, prompts, seed=None):
    """:func:`lm_core.text.generate.generate` with the command line's sampler options."""
    return generate(
        model, tok, prompts, gen_length=args.gen_length,
        block_length=args.block_length or min(32, args.gen_length), steps=args.steps,
        sampler=args.sampler, temperature=args.temperature, tau=args.tau,
        confidence=args.confidence, cfg_scale=args.cfg, max_new_tokens=args.max_new_tokens,
        seed=args.seed if seed is None else seed, mask_id=meta.get("mask_id"), cache=args.cache,
        stop_ids=args.stop_id, stop=args.stop,
    )  # fmt: skip


def _answer_file(args, model, tok, meta) -> int:
    """``--prompts FILE --out FILE``: answer every SFT example's prompt, write the examples back
    with the model's answers (temporary file, then rename)."""
    examples = read_jsonl(args.prompts)
    if not examples:
        raise ValueError(f"--prompts: {args.prompts} holds no examples")
    out, nfe, tokens, seconds = [], 0, 0, 0.0
    for i in range(0, len(examples), args.batch_size):
        part = examples[i : i + args.batch_size]
        res = _sample(
            args, model, tok, meta, [answer_prompt(ex) for ex in part], seed=args.seed + i
        )
        out += [with_answer(ex, text) for ex, text in zip(part, res.texts, strict=True)]
        nfe += res.stats.nfe
        tokens += res.stats.tokens
        seconds += res.stats.seconds
    path = atomic_write_text(args.out, "".join(json.dumps(ex) + "\n" for ex in out))
    print(
        f"# wrote {len(out)} answers to {path}; sampler={args.sampler} nfe={nfe} "
        f"tpf={tokens / max(nfe, 1):.2f} seconds={seconds:.3f}"
    )
    return 0


def _flow(args) -> int:
    """Branch of ``lm-core generate`` for a flow checkpoint (``--sampler euler|sde``)."""
    model, tok, _ = load_flow_checkpoint(args.ckpt, args.device)
    if tok is None:
        raise FileNotFoundError(f"{args.ckpt}: no tokenizer in the checkpoint")
    sampler = "euler" if args.sampler == "low_confidence" else args.sampler
    if sampler not in FLOW_SAMPLERS:
        raise ValueError(
            f"sampler: a flow checkpoint takes one of {FLOW_SAMPLERS}, got {sampler!r}"
        )
    texts, s = generate_flow(
        model, tok, args.prompt, gen_length=args.gen_length, steps=args.steps or 32,
        sampler=sampler, churn=getattr(args, "churn", 0.5), cfg_scale=args.cfg, seed=args.seed,
    )  # fmt: skip
    for text in texts:
        print(text)
    print(
        f"# sampler={sampler} nfe={s.nfe} forward_passes={s.forward_passes} "
        f"seconds={s.seconds:.3f} tokens_per_s={s.tokens_per_second:.1f}"
    )
    return 0
