"""``lm-core eval``: lm-evaluation-harness tasks on a checkpoint.

    lm-core eval --ckpt DIR --tasks NAME[,NAME] [--include-path DIR] [--mc-samples 64]
        [--limit N] [--num-fewshot N] [--batch-size 16] [--seed 0] [--device cpu]
        [--block-length 32 --steps-per-block N --sampler low_confidence --tau 0.9]
        [--out results.json]

Loglikelihood requests are answered with the Monte-Carlo ELBO (``--mc-samples`` samples,
``--seed``; the same number ``lm-core score --prompt --continuation`` prints), generation with
the masked sampler (:mod:`lm_core.eval.requests`). ``--include-path`` is a folder of task YAML
files (local data: ``dataset_path: json`` with ``dataset_kwargs.data_files``). Prints the
harness's table; ``--out`` writes its results as JSON. Needs the ``eval`` extra (lm-eval).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lm_core.checkpoint import atomic_write_text, ensure_writable


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lm-core eval", description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="checkpoint folder (lm_core or LLaDA format)")
    p.add_argument("--tasks", required=True, help="comma-separated lm-eval task names")
    p.add_argument("--include-path", default=None, help="folder of extra task YAML files")
    p.add_argument("--mc-samples", type=int, default=64, help="ELBO samples per loglikelihood")
    p.add_argument("--limit", type=int, default=None, help="documents per task (for a quick look)")
    p.add_argument("--num-fewshot", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16, help="ELBO samples per forward pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--block-length", type=int, default=32, help="generation block size")
    p.add_argument("--steps-per-block", type=int, default=None, help="default: one token a step")
    p.add_argument("--sampler", default="low_confidence")
    p.add_argument("--tau", type=float, default=0.9)
    p.add_argument("--bootstrap-iters", type=int, default=1000, help="0: no standard errors")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--verbose", action="store_true", help="the harness's info and warnings")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        parser.error("--tasks: expected one or more task names, comma-separated")
    for name in ("mc_samples", "batch_size", "block_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer")
    if args.out is not None:
        ensure_writable(Path(args.out).parent)
    try:
        from lm_core.eval import harness  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    except ImportError as e:
        raise RuntimeError(
            f"lm-core eval needs the eval extra (pip install 'dlm-engine[eval]'): {e}"
        ) from None
    scorer = harness.load_scorer(
        args.ckpt, device=args.device, mc_samples=args.mc_samples, batch_size=args.batch_size,
        seed=args.seed, block_length=args.block_length, steps_per_block=args.steps_per_block,
        sampler=args.sampler, tau=args.tau,
    )  # fmt: skip
    results = harness.run_eval(
        scorer, tasks, include_path=args.include_path, limit=args.limit,
        num_fewshot=args.num_fewshot, bootstrap_iters=args.bootstrap_iters, verbose=args.verbose,
    )  # fmt: skip
    print(harness.table(results))
    if args.out is not None:
        keep = {k: results[k] for k in ("results", "versions", "n-shot", "configs") if k in results}
        atomic_write_text(args.out, json.dumps(keep, indent=2, default=str))
        print(f"# wrote {args.out}")
    return 0
