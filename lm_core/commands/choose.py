"""``lm-core choose``: multiple-choice scoring with likelihood and confidence side by side.

    lm-core choose --ckpt DIR --question TEXT --choices A B C ... [--samples 64 --seed 0]

Prints, per choice, the ELBO log-likelihood per token and the confidence score (both in nats per
token, see :mod:`lm_core.text.scoring`), then the pick of each method.
"""

from __future__ import annotations

import argparse

from lm_core.text.llada import load_any
from lm_core.text.scoring import choice_scores


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lm-core choose", description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--question", required=True)
    p.add_argument("--choices", required=True, nargs="+")
    p.add_argument("--samples", type=int, default=64, help="Monte-Carlo samples per choice")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.choices) < 2:
        raise ValueError("--choices: give at least two choices")
    model, tok, meta = load_any(args.ckpt, args.device)
    if tok is None:
        raise FileNotFoundError(f"{args.ckpt}: no tokenizer in the checkpoint")
    if model.cfg.causal:
        raise ValueError("choose needs a masked (diffusion) checkpoint")
    mask_id = meta.get("mask_id", tok.mask_id)
    q = tok.encode(args.question)
    cs = [tok.encode(c) for c in args.choices]
    for i, c in enumerate(cs):
        if not c:
            raise ValueError(f"--choices: choice {i} is empty")
    lik = choice_scores(
        model, q, cs, mask_id=mask_id, method="likelihood", n_samples=args.samples,
        batch_size=args.batch_size, seed=args.seed,
    )  # fmt: skip
    conf = choice_scores(model, q, cs, mask_id=mask_id, method="confidence")
    print(f"{'choice':<24} {'likelihood/token':>16} {'confidence/token':>16}")
    for c, a, b in zip(args.choices, lik, conf, strict=True):
        print(f"{c[:24]:<24} {a:>16.4f} {b:>16.4f}")
    pick = lambda s: args.choices[max(range(len(s)), key=s.__getitem__)]  # noqa: E731
    print(f"pick: likelihood -> {pick(lik)!r}; confidence -> {pick(conf)!r}")
    return 0
