"""The lm-eval adapter against `lm-core score`: same text, samples and seed, same loglikelihood.

    python -m benchmarks.lm_eval_adapter            # lm_likelihood's full pair (trained if absent)
    python -m benchmarks.lm_eval_adapter --quick    # its quick pair, fewer questions

Protocol. lm_choice's held-out Shakespeare questions (seed 0: a ~100-byte context, the true next
30 bytes and 3 distractors) are written as a local lm-eval task (YAML + JSONL, output_type
multiple_choice, no target delimiter) and run through the harness (``lm_core.eval.harness.run_eval``,
the registered model type ``lm_core``) on lm_likelihood's masked model with --samples Monte-Carlo
samples and seed 0, then on its matched AR model (exact). Every logged request of the masked run
is scored again with ``lm_core.text.scoring.continuation_loglik`` (the function `lm-core score
--prompt --continuation` calls) and the first --cli requests through the `lm-core score` command
itself (its printed 4-decimal value). Reported: requests, the largest absolute difference, the
share equal to 4 decimals, the harness's acc / acc_norm and the wall-clock of each run.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
import time
from pathlib import Path

from benchmarks.common import base_parser, finish, print_header, setup_torch
from benchmarks.lm_choice import build_questions
from benchmarks.lm_likelihood import load_pair, model_dir
from lm_core.cli import main as cli
from lm_core.data.corpora import load_corpus
from lm_core.eval.harness import load_scorer, run_eval
from lm_core.text.scoring import continuation_loglik

TASK_YAML = """task: shakespeare_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def score_cli(ckpt: Path, ctx: str, cont: str, samples: int, seed: int) -> float:
    """The number `lm-core score --prompt --continuation` prints."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli(["score", "--ckpt", str(ckpt), "--prompt", ctx, "--continuation", cont,
                  "--samples", str(samples), "--batch-size", "32", "--seed", str(seed)])  # fmt: skip
    if rc != 0:
        raise RuntimeError(f"lm-core score failed (rc {rc})")
    return float(re.search(r">= (\S+) \+-", buf.getvalue()).group(1))


def main(argv=None) -> int:
    ap = base_parser("lm-eval adapter loglikelihood vs lm-core score on the same requests.")
    ap.add_argument("--questions", type=int, default=None, help="questions (full 100, quick 10)")
    ap.add_argument("--samples", type=int, default=32, help="Monte-Carlo samples per request")
    ap.add_argument("--cli", type=int, default=8, help="requests also checked through the CLI")
    args = ap.parse_args(argv)
    setup_torch(args.threads, args.device)
    n_q = args.questions or (10 if args.quick else 100)
    m = print_header(
        "lm_eval_adapter",
        [
            f"{n_q} lm_choice questions (Shakespeare val, seed 0) as a local lm-eval "
            "multiple_choice task (YAML + JSONL, offline)",
            f"masked model of lm_likelihood.py: harness loglikelihood, {args.samples} MC samples, "
            "seed 0; every request rescored with scoring.continuation_loglik (what lm-core score "
            f"calls), the first {args.cli} through the lm-core score command",
            "AR model of lm_likelihood.py: the same task, exact scoring (reference accuracy)",
            f"torch threads {args.threads}, device {args.device}",
        ],
        args,
    )
    load_pair(args.quick, args.device)  # trains the pair first if absent
    root = model_dir(args.quick, args.device)
    qs = build_questions(load_corpus("shakespeare", "val"), n_q)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "questions.jsonl"
        data.write_text("".join(json.dumps(q) + "\n" for q in qs))
        (Path(tmp) / "shakespeare_choice.yaml").write_text(TASK_YAML.format(data=data))
        for kind in ("masked", "ar"):
            scorer = load_scorer(str(root / kind), device=args.device, mc_samples=args.samples,
                                 batch_size=32, seed=0)  # fmt: skip
            t0 = time.perf_counter()
            res = run_eval(scorer, ["shakespeare_choice"], include_path=tmp, log_samples=True,
                           bootstrap_iters=0)  # fmt: skip
            secs = time.perf_counter() - t0
            reqs = [
                (ctx, cont, ll)
                for s in res["samples"]["shakespeare_choice"]
                for (ctx, cont), ((ll, _),) in zip(s["arguments"], s["resps"], strict=True)
            ]
            r = res["results"]["shakespeare_choice"]
            row = {"model": kind, "requests": len(reqs), "acc": r["acc,none"],
                   "acc_norm": r["acc_norm,none"], "harness_s": secs}  # fmt: skip
            if kind == "masked":
                tok = scorer.tok
                diffs = [
                    abs(ll - continuation_loglik(
                        scorer.model, tok.encode(c), tok.encode(x), mask_id=scorer.mask_id,
                        n_samples=args.samples, batch_size=32, seed=0)[0])
                    for c, x, ll in reqs
                ]  # fmt: skip
                cli_eq = [
                    round(ll, 4) == score_cli(root / kind, c, x, args.samples, 0)
                    for c, x, ll in reqs[: args.cli]
                ]
                row |= {"max_abs_diff_vs_scoring": max(diffs),
                        "cli_equal_4dp": f"{sum(cli_eq)}/{len(cli_eq)}"}  # fmt: skip
            rows.append(row)
            print(f"  {kind}: {row}", flush=True)
    cols = ["model", "requests", "max_abs_diff_vs_scoring", "cli_equal_4dp", "acc", "acc_norm",
            "harness_s"]  # fmt: skip
    finish("lm_eval_adapter", rows, cols, args.out, m, key=("model",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
