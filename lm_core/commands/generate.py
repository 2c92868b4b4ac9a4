"""``lm-core generate``: sample text from a checkpoint and report its cost.

    lm-core generate --ckpt DIR --prompt TEXT [--sampler low_confidence|threshold|random|dmax]
        [--gen-length N --block-length N --steps N --tau X --temperature X --cfg X
         --confidence prob|margin|entropy|random --max-new-tokens N --seed N --device D]

Prints the generated text, then one line with NFE, tokens per forward (TPF), wall-clock and
tokens per second. ``--ckpt`` is an lm_core checkpoint or a LLaDA-format directory. A flow
checkpoint (``objective: flow``) takes ``--sampler euler|sde`` (``--churn``), ``--steps``
(its NFE, default 32) and ``--cfg`` (see :mod:`lm_core.flow.sampling`).
"""

from __future__ import annotations

import argparse

from lm_core.sampling.policies import CONFIDENCES, SAMPLERS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lm-core generate", description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="checkpoint directory")
    p.add_argument("--prompt", required=True, action="append", help="prompt text (repeatable)")
    p.add_argument(
        "--sampler",
        default="low_confidence",
        help=f"one of {(*SAMPLERS, 'dmax')} (dmax: soft parallel decoding, lm_core.dmax)",
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lm_core.flow.model import is_flow_checkpoint

    if is_flow_checkpoint(args.ckpt):  # flow LM: --sampler euler|sde, --steps, --cfg, --churn
        from lm_core.flow.commands import generate as flow_generate

        return flow_generate(args)
    from lm_core.llada import load_any
    from lm_core.sampling.generate import generate

    model, tok, meta = load_any(args.ckpt, args.device)
    if tok is None:
        raise FileNotFoundError(f"{args.ckpt}: no tokenizer in the checkpoint")
    res = generate(
        model, tok, args.prompt, gen_length=args.gen_length, block_length=args.block_length or min(32, args.gen_length),
        steps=args.steps, sampler=args.sampler, temperature=args.temperature, tau=args.tau,
        confidence=args.confidence, cfg_scale=args.cfg, max_new_tokens=args.max_new_tokens,
        seed=args.seed, mask_id=meta.get("mask_id"),
    )  # fmt: skip
    for text in res.texts:
        print(text)
    s = res.stats
    print(
        f"# sampler={args.sampler} nfe={s.nfe} forward_passes={s.forward_passes} "
        f"tpf={s.tpf:.2f} seconds={s.seconds:.3f} tokens_per_s={s.tokens_per_second:.1f}"
    )
    return 0
