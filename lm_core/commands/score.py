"""``lm-core score``: perplexity of a text file, or log-likelihood of a continuation.

    lm-core score --ckpt DIR --text FILE [--samples 64 --batch-size 16 --context N --seed 0]
    lm-core score --ckpt DIR --prompt TEXT --continuation TEXT [--samples 64 ...]

A masked checkpoint reports the ELBO perplexity bound with its 95 % interval (Monte-Carlo, see
:mod:`lm_core.scoring`); an AR checkpoint (``objective: ar`` or a causal model) reports the exact
perplexity; a flow checkpoint (``objective: flow``) reports its flow-matching loss and codec
round-trip accuracy, which are not likelihood bounds (:mod:`lm_core.flow.commands`). The file
is one document (EOS is prepended as the first, given token, so every real token is scored).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lm-core score", description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--text", help="text file to score (perplexity)")
    p.add_argument("--prompt", help="prompt text (with --continuation)")
    p.add_argument("--continuation", help="continuation text to score given --prompt")
    p.add_argument("--samples", type=int, default=64, help="Monte-Carlo samples per window")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--context", type=int, default=None, help="rolling-window context tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.text is None) == (args.continuation is None):
        raise ValueError("give either --text FILE or --prompt TEXT --continuation TEXT")
    from lm_core.flow.model import is_flow_checkpoint

    if is_flow_checkpoint(args.ckpt):  # flow LM: flow-matching loss, not a likelihood bound
        from lm_core.flow.commands import score as flow_score

        return flow_score(args)
    from lm_core import scoring
    from lm_core.llada import load_any

    model, tok, meta = load_any(args.ckpt, args.device)
    if tok is None:
        raise FileNotFoundError(f"{args.ckpt}: no tokenizer in the checkpoint")
    mask_id = meta.get("mask_id", getattr(tok, "mask_id", None))
    ar = meta.get("objective") == "ar" or model.cfg.causal
    if args.text is not None:
        path = Path(args.text)
        if not path.is_file():
            raise FileNotFoundError(f"--text: {path} does not exist")
        doc = [tok.eos_id, *tok.encode(path.read_text(encoding="utf-8"))]
        if ar:
            r = scoring.ar_perplexity(model, [doc], context=args.context)
            print(f"perplexity {r.ppl:.3f} (exact, AR) over {r.n_tokens} tokens")
        else:
            r = scoring.elbo_perplexity(
                model, [doc], mask_id=mask_id, n_samples=args.samples,
                batch_size=args.batch_size, context=args.context, seed=args.seed,
            )  # fmt: skip
            print(
                f"perplexity <= {r.ppl:.3f} (ELBO bound; 95% interval {r.ppl_low:.3f}-"
                f"{r.ppl_high:.3f}; {args.samples} samples/window) over {r.n_tokens} tokens"
            )
        return 0
    if ar:
        raise ValueError("--continuation scoring needs a masked (diffusion) checkpoint")
    prompt = tok.encode(args.prompt or "")
    est, se = scoring.continuation_loglik(
        model, prompt, tok.encode(args.continuation), mask_id=mask_id,
        n_samples=args.samples, batch_size=args.batch_size, seed=args.seed,
    )  # fmt: skip
    print(f"log-likelihood >= {est:.4f} +- {se:.4f} nats (ELBO, {args.samples} samples)")
    return 0
