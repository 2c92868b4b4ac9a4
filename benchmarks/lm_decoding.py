"""Sampler settings of a masked diffusion LM: accuracy, NFE, tokens per forward and tokens/s.

    python -m benchmarks.lm_decoding            # full (~12 min training + ~6 min decoding on the shared machine)
    python -m benchmarks.lm_decoding --quick    # smoke run (~1-2 minutes)

Protocol.

1. A SYNTHETIC task with checkable answers: sort 8 random decimal digits,
   ``"s:53172890>"`` -> ``"01235789"`` (byte tokens; 8 answer tokens, so up to 8 tokens per
   forward are possible). A small masked DLM (bidirectional Transformer, byte tokenizer) is trained
   through the library (``lm_core.train.run.run``, masked-diffusion ELBO on whole examples
   packed into batches) on freshly generated examples; the test problems are disjoint from
   training by construction (a different seed; exact duplicates are removed). Every sampler
   setting decodes the same test problems one at a time (batch 1, so NFE and TPF are per problem)
   with ``lm_core.text.generate.generate`` (greedy, temperature 0, one block of 8): exact-match accuracy,
   per-digit accuracy, mean NFE, TPF (tokens per forward) and tokens/s.
2. Real text: the masked Shakespeare model of ``lm_likelihood.py`` continues held-out openings
   (32 prompt tokens, 64 new tokens in blocks of 32, temperature 1.0); generative perplexity of the
   continuations under the matched AR model of the same benchmark, with the unigram entropy (bits)
   of the generated tokens beside it (a degenerate, repetitive sampler lowers the first and the
   second together); the held-out true continuations are the reference row.

Goal: a threshold setting with TPF >= 3 within 1 point of the one-token-per-step accuracy.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import CACHE, base_parser, finish, print_header, save_png, setup_torch  # noqa: E402
from benchmarks.lm_likelihood import load_pair  # noqa: E402
from lm_core.checkpoint import atomic_write_text, load_checkpoint  # noqa: E402
from lm_core.data.corpora import load_corpus  # noqa: E402
from lm_core.text.generate import generate  # noqa: E402
from lm_core.train.config import parse  # noqa: E402
from lm_core.train.run import run  # noqa: E402

N_DIGITS = 8
SHAPE = {"d_model": 128, "n_layers": 4, "n_heads": 4, "max_seq_len": 256}
FULL_STEPS, QUICK_STEPS = 2000, 60
FULL_TEST, QUICK_TEST = 300, 40


def problem(rng: random.Random, n_digits: int = N_DIGITS) -> tuple[str, str]:
    digits = "".join(rng.choice("0123456789") for _ in range(n_digits))
    return f"s:{digits}>", "".join(sorted(digits))


def make_data(
    root: Path,
    n_train: int,
    n_test: int,
    n_digits: int = N_DIGITS,
    *,
    make_problem=problem,
    prefix: str = "sort",
) -> list[tuple[str, str]]:
    """Write ``{prefix}_train/val.jsonl`` (seed 1) and return test problems (seed 2, disjoint from
    train); ``make_problem(rng, n_digits) -> (prompt, answer)`` defines the task."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    train = {}
    while len(train) < n_train:
        p, a = make_problem(rng, n_digits)
        train[p] = a
    rng_t, test = random.Random(2), {}
    while len(test) < n_test:
        p, a = make_problem(rng_t, n_digits)
        if p not in train:
            test[p] = a
    items = list(train.items())
    for name, part in (("train", items[:-200]), ("val", items[-200:])):
        # written whole, then renamed: another run reading the same data never sees half a file
        text = "".join(json.dumps({"text": p + a}) + "\n" for p, a in part)
        atomic_write_text(root / f"{prefix}_{name}.jsonl", text)
    return list(test.items())


def train_sorter(root: Path, steps: int) -> Path:
    final = root / "model"
    meta = root / "model.json"
    done = json.loads(meta.read_text()) if final.is_dir() and meta.is_file() else {}
    if done.get("steps") == steps:
        print(f"reusing {final} ({steps} steps)")
        return final
    resume = "null"
    args = [
        "--model.vocab_size=null", *(f"--model.{k}={v}" for k, v in SHAPE.items()),
        "--objective.corruption.stratified=true", "--optim.lr=0.003", "--optim.weight_decay=0.0",
        "--optim.warmup_steps=50", "--optim.decay_fraction=0.3",
        f"--data.train={root / 'sort_train.jsonl'}", f"--data.val={root / 'sort_val.jsonl'}",
        "--data.tokenizer=byte", "--data.token_budget=256", "--data.split_share=0.0",
        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.precision=32-true",
        f"--trainer.max_steps={steps}", "--trainer.val_check_interval=1000000",
        f"--trainer.log_every_n_steps={max(steps // 6, 1)}", f"--trainer.ckpt_every_n_steps={steps}",
        "--trainer.progress_bar=false", f"--out_dir={root / 'run'}", f"--resume={resume}", "--seed=0",
    ]  # fmt: skip
    t0 = time.perf_counter()
    trainer, module = run(parse(args))
    module.export(final, trainer.datamodule.tokenizer)
    train_s = time.perf_counter() - t0
    meta.write_text(json.dumps({"steps": steps, "train_s": train_s}))
    print(f"trained the sorter: {steps} steps, {train_s:.0f}s in all")
    return final


def settings(n: int) -> list[dict]:
    """Sampler settings for a block of n tokens (name, generate() keyword arguments)."""
    s = [{"name": "low_confidence 1/step", "sampler": "low_confidence", "steps": n}]
    for k in (2, 4):
        s.append({"name": f"low_confidence {k}/step", "sampler": "low_confidence", "steps": n // k})
    for tau in (0.5, 0.7, 0.9, 0.95):
        s.append({"name": f"threshold tau={tau}", "sampler": "threshold", "tau": tau, "steps": n})
    s.append(
        {
            "name": "threshold margin tau=0.9",
            "sampler": "threshold",
            "tau": 0.9,
            "confidence": "margin",
            "steps": n,
        }
    )
    s.append({"name": "random 1/step", "sampler": "random", "steps": n})
    s.append(
        {"name": "margin 1/step", "sampler": "low_confidence", "confidence": "margin", "steps": n}
    )
    s.append(
        {"name": "entropy 1/step", "sampler": "low_confidence", "confidence": "entropy", "steps": n}
    )
    return s


def run_setting(model, tok, prompts, setting, *, gen_length, block_length, temperature, seed=0):
    kw = {k: v for k, v in setting.items() if k != "name"}
    outs, nfe, tokens, secs = [], 0, 0, 0.0
    for i, p in enumerate(prompts):
        r = generate(model, tok, [p], gen_length=gen_length, block_length=block_length,
                     temperature=temperature, seed=seed + i, **kw)  # fmt: skip
        outs.append(r.sequences[0].tolist())
        nfe, tokens, secs = nfe + r.stats.nfe, tokens + r.stats.tokens, secs + r.stats.seconds
    return outs, {
        "nfe": nfe / len(prompts),
        "tpf": tokens / max(nfe, 1),
        "tokens_per_s": tokens / secs,
    }


def synthetic(args, torch) -> tuple[list[dict], list[str]]:
    root = CACHE / "lm_decoding" / ("quick" if args.quick else "full")
    steps = args.steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    n_test = args.problems or (QUICK_TEST if args.quick else FULL_TEST)
    test = make_data(root, 60_000, n_test)
    model, tok, _ = load_checkpoint(train_sorter(root, steps))
    prompts = [tok.encode(p) for p, _ in test]
    rows = []
    for s in settings(N_DIGITS):
        outs, st = run_setting(model, tok, prompts, s, gen_length=N_DIGITS, block_length=N_DIGITS,
                               temperature=0.0)  # fmt: skip
        got = [tok.decode(o) for o in outs]
        exact = sum(g == a for g, (_, a) in zip(got, test, strict=False)) / len(test)
        digit = sum(
            x == y
            for g, (_, a) in zip(got, test, strict=False)
            for x, y in zip(g.ljust(N_DIGITS), a, strict=False)
        ) / (len(test) * N_DIGITS)
        rows.append({"task": "sort-8 (synthetic)", "setting": s["name"], "accuracy_pct": 100 * exact,
                     "digit_acc_pct": 100 * digit, **st})  # fmt: skip
        print(
            f"  {s['name']:>26}: exact {100 * exact:5.1f}%  NFE {st['nfe']:.2f}  TPF {st['tpf']:.2f}  "
            f"{st['tokens_per_s']:.0f} tok/s",
            flush=True,
        )
    base = rows[0]["accuracy_pct"]
    ok = [
        r
        for r in rows
        if r["setting"].startswith("threshold")
        and r["tpf"] >= 3
        and r["accuracy_pct"] >= base - 1.0
    ]
    notes = [
        f"synthetic task: sort {N_DIGITS} digits, {len(test)} held-out problems, model trained "
        f"{steps} steps; one-token-per-step exact accuracy {base:.1f}%",
        "goal (threshold with TPF >= 3 within 1 point of 1/step): "
        + (
            "MET by "
            + ", ".join(
                f"{r['setting']} (TPF {r['tpf']:.2f}, {r['accuracy_pct']:.1f}%)" for r in ok
            )
            if ok
            else "MISSED"
        ),
    ]
    return rows, notes


def real_text(args, torch) -> tuple[list[dict], list[str]]:
    dm, ar, tok = load_pair(args.quick)
    P, N, B = 32, 64, 32
    n_prompts = 3 if args.quick else 6
    docs = [tok.encode(d) for d in load_corpus("shakespeare", "val")[-n_prompts:]]
    prompts = [d[:P] for d in docs]
    truths = [d[P : P + N] for d in docs]

    @torch.no_grad()
    def gen_ppl(conts):
        nll, n = 0.0, 0
        for p, c in zip(prompts, conts, strict=False):
            c = [t for t in c if t != tok.eos_id] or [tok.eos_id]
            x = torch.tensor(p + c)[None]
            logits = ar(x)[0, len(p) - 1 : -1].float()
            nll += float(torch.nn.functional.cross_entropy(logits, x[0, len(p) :], reduction="sum"))
            n += len(c)
        return math.exp(nll / n)

    def unigram_entropy(conts):
        cnt = Counter(t for c in conts for t in c)
        tot = sum(cnt.values())
        return -sum(v / tot * math.log2(v / tot) for v in cnt.values())

    rows = [
        {
            "task": "shakespeare (real text)",
            "setting": "held-out true continuation",
            "gen_ppl_ar": gen_ppl(truths),
            "unigram_entropy_bits": unigram_entropy(truths),
        }
    ]
    for s in settings(N)[:1] + settings(N)[1:3] + settings(N)[3:8] + settings(N)[8:]:
        s = {**s, "steps": s["steps"]}
        outs, st = run_setting(dm, tok, prompts, s, gen_length=N, block_length=B, temperature=1.0)
        rows.append(
            {
                "task": "shakespeare (real text)",
                "setting": s["name"],
                **st,
                "gen_ppl_ar": gen_ppl(outs),
                "unigram_entropy_bits": unigram_entropy(outs),
            }
        )
        print(
            f"  {s['name']:>26}: gen ppl {rows[-1]['gen_ppl_ar']:.1f}  entropy "
            f"{rows[-1]['unigram_entropy_bits']:.2f}  TPF {st['tpf']:.2f}",
            flush=True,
        )
    sample = tok.decode(prompts[0]) + " [[" + tok.decode(outs[0]) + "]]"
    return rows, [
        f"real text: {n_prompts} held-out Shakespeare openings, {P} prompt + {N} new BPE tokens, "
        "blocks of 32, temperature 1.0; gen ppl under the matched AR model of lm_likelihood",
        "sample (last setting): " + sample.replace("\n", " / ")[:300],
    ]


def main(argv=None) -> int:
    ap = base_parser(
        "Sampler settings: accuracy / NFE / TPF / tokens/s (synthetic sorting + real text)."
    )
    ap.add_argument(
        "--steps", type=int, default=None, help=f"sorter training steps (full {FULL_STEPS})"
    )
    ap.add_argument("--problems", type=int, default=None, help=f"test problems (full {FULL_TEST})")
    ap.add_argument("--skip-real", action="store_true", help="skip the real-text part")
    args = ap.parse_args(argv)
    torch = setup_torch(args.threads, args.device)
    m = print_header(
        "lm_decoding",
        [
            f"SYNTHETIC task: sort {N_DIGITS} random digits ('s:53172890>' -> '01235789'), byte tokens; "
            f"masked DLM d_model={SHAPE['d_model']}, {SHAPE['n_layers']} layers, trained via lm_core fit",
            "decoding: lm_core.text.generate.generate, batch 1 (NFE/TPF per problem), greedy, one block of 8",
            "real text: lm_likelihood's masked Shakespeare model, temperature 1.0; gen ppl under its "
            "matched AR model, unigram entropy beside it",
            f"torch threads {args.threads}, device cpu",
        ],
        args,
    )
    with torch.no_grad():
        rows, notes = synthetic(args, torch)
        if not args.skip_real:
            r2, n2 = real_text(args, torch)
            rows, notes = rows + r2, notes + n2
    try:
        import matplotlib  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        syn = [r for r in rows if r["task"].startswith("sort")]
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in syn:
            ax.scatter(r["tpf"], r["accuracy_pct"], s=18)
            ax.annotate(r["setting"], (r["tpf"], r["accuracy_pct"]), fontsize=7)
        ax.set_xlabel("tokens per forward pass (TPF)")
        ax.set_ylabel("exact-match accuracy (%)")
        ax.set_title(f"sort {N_DIGITS} digits (synthetic)")
        if not args.quick:
            print(f"wrote {save_png(fig, args.out, 'lm_decoding')}")
    except ImportError:
        pass
    cols = [
        "task",
        "setting",
        "accuracy_pct",
        "digit_acc_pct",
        "nfe",
        "tpf",
        "tokens_per_s",
        "gen_ppl_ar",
        "unigram_entropy_bits",
    ]
    finish(
        "lm_decoding",
        rows,
        cols,
        args.out,
        {"date": m["date"], "threads": args.threads, "torch": m["torch"]},
        notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
