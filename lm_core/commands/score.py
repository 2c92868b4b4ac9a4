"""``lm-core score``: perplexity of a text file, or log-likelihood of a continuation.

    lm-core score --ckpt DIR --text FILE [--samples 64 --batch-size 16 --context N --seed 0
                                          --no-progress]
    lm-core score --ckpt DIR --prompt TEXT --continuation TEXT [--samples 64 ...]

A masked checkpoint reports the ELBO perplexity bound with its 95 % interval (Monte-Carlo, see
:mod:`lm_core.text.scoring`); an AR checkpoint (``objective: ar`` or a causal model) reports the
exact perplexity; a flow checkpoint (``objective: flow``) reports its flow-matching loss and codec
round-trip accuracy, which are not likelihood bounds (:mod:`lm_core.text.flow`). The file
is one document (EOS is prepended as the first, given token, so every real token is scored).

ELBO scoring of a file shows a progress bar on stderr (forward passes done / total, windows,
elapsed and an estimate of the time left); ``--no-progress`` silences it, as in ``tsdiff
forecast`` and ``tsdiff evaluate``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from tqdm.auto import tqdm

from lm_core.flow.model import is_flow_checkpoint, load_flow_checkpoint
from lm_core.text import scoring
from lm_core.text.flow import flow_score
from lm_core.text.llada import load_any


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
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.text is None) == (args.continuation is None):
        raise ValueError("give either --text FILE or --prompt TEXT --continuation TEXT")
    if is_flow_checkpoint(args.ckpt):  # flow LM: flow-matching loss, not a likelihood bound
        return _flow(args)
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
            r = _elbo_with_progress(args, model, doc, mask_id)
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


def _elbo_with_progress(args, model, doc: list[int], mask_id: int):
    """:func:`~lm_core.text.scoring.elbo_perplexity` of one document with a progress bar on
    stderr (forward passes done / total, elapsed, time left) unless ``--no-progress``."""
    if args.samples < 1 or args.batch_size < 1:
        raise ValueError(f"--samples and --batch-size: expected >= 1, got {args.samples}, "
                         f"{args.batch_size}")  # fmt: skip
    window = model.cfg.max_seq_len
    context = window // 2 if args.context is None else args.context
    total = scoring.elbo_passes(
        [len(doc)], window, n_samples=args.samples, batch_size=args.batch_size, context=context
    )
    per_window = math.ceil(args.samples / args.batch_size)
    bar = tqdm(total=total, desc="score", unit="pass", disable=not args.progress, file=sys.stderr)
    with bar:

        def step(n: int) -> None:
            bar.update(n)
            bar.set_postfix_str(
                f"window {bar.n // per_window}/{total // per_window}", refresh=False
            )

        return scoring.elbo_perplexity(
            model, [doc], mask_id=mask_id, n_samples=args.samples, batch_size=args.batch_size,
            context=args.context, seed=args.seed, progress=step,
        )  # fmt: skip


def _flow(args) -> int:
    """Branch of ``lm-core score`` for a flow checkpoint (:func:`lm_core.text.flow.flow_score`)."""
    model, tok, _ = load_flow_checkpoint(args.ckpt, args.device)
    if tok is None:
        raise FileNotFoundError(f"{args.ckpt}: no tokenizer in the checkpoint")
    if args.text is not None:
        path = Path(args.text)
        if not path.is_file():
            raise FileNotFoundError(f"--text: {path} does not exist")
        ids, n_prompt = tok.encode(path.read_text(encoding="utf-8")), 0
    else:
        prompt = tok.encode(args.prompt or "")
        ids, n_prompt = prompt + tok.encode(args.continuation), len(prompt)
    r = flow_score(model, ids, n_prompt=n_prompt, n_t=min(args.samples, 64), seed=args.seed)
    print(
        f"flow-matching loss {r['flow_loss']:.4f} (velocity MSE per latent dim, "
        f"{min(args.samples, 64)} stratified t; not a likelihood bound); x-MSE {r['x_mse']:.4f}; "
        f"codec round-trip accuracy {r['codec_acc']:.3f}; over {r['n_tokens']} tokens"
    )
    return 0
