"""Multiple choice from held-out Shakespeare: likelihood scoring vs confidence scoring.

    python -m benchmarks.lm_choice            # full (~5 min; trains lm_likelihood's pair if absent)
    python -m benchmarks.lm_choice --quick    # smoke run

Protocol. Questions are built from the held-out (``val``) split of the embedded Shakespeare with a
fixed seed: a context of ~100 bytes ending at a word boundary, the true next 30 bytes, and 3
distractors of 30 bytes that start at a word boundary somewhere else in the held-out split (another
document). The order of the 4 choices is shuffled. The masked model of ``lm_likelihood.py`` scores
each choice with ``lm_core.text.scoring.choice_scores``:

- ``likelihood``: Monte-Carlo ELBO of log p(choice | context), 32 stratified samples (--samples), the same
  random numbers for every choice, per token (length-normalised);
- ``confidence``: the deterministic confidence surrogate (reveal the choice's tokens most
  confident first, average log-probability of the revealed tokens), per token;

and, as a reference, the matched AR model's exact log-likelihood per token. Reported: accuracy
(chance = 25 %) with a 95 % binomial interval, the agreement of the two DLM scorers, and the cost.
"""

from __future__ import annotations

import math
import random
import time

from benchmarks.common import base_parser, finish, print_header, setup_torch  # noqa: E402
from benchmarks.lm_likelihood import load_pair  # noqa: E402
from lm_core.data.corpora import load_corpus  # noqa: E402
from lm_core.text.scoring import choice_scores  # noqa: E402

CTX, CONT, N_CHOICES = 100, 30, 4


def word_starts(text: str) -> list[int]:
    return [i for i in range(1, len(text)) if text[i - 1] in " \n" and text[i] not in " \n"]


def build_questions(docs: list[str], n: int, seed: int = 0) -> list[dict]:
    """n questions: {"context", "choices" (4 strings of CONT chars), "answer" (index)}."""
    rng = random.Random(seed)
    starts = [word_starts(d) for d in docs]
    out = []
    while len(out) < n:
        d = rng.randrange(len(docs))
        ok = [i for i in starts[d] if i >= CTX and i + CONT <= len(docs[d])]
        if not ok:
            continue
        cut = rng.choice(ok)
        context, truth = docs[d][cut - CTX : cut], docs[d][cut : cut + CONT]
        distractors = set()
        while len(distractors) < N_CHOICES - 1:
            e = rng.randrange(len(docs))
            if e == d:
                continue
            cand = [i for i in starts[e] if i + CONT <= len(docs[e])]
            s = docs[e][(j := rng.choice(cand)) : j + CONT]
            if s != truth and s.strip():
                distractors.add(s)
        choices = [truth, *sorted(distractors)]
        rng.shuffle(choices)
        out.append({"context": context, "choices": choices, "answer": choices.index(truth)})
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p, z = k / n, 1.96
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * (c - h), 100 * (c + h)


def main(argv=None) -> int:
    ap = base_parser("Multiple choice on held-out Shakespeare: likelihood vs confidence scoring.")
    ap.add_argument("--questions", type=int, default=None, help="questions (full 150, quick 20)")
    ap.add_argument("--samples", type=int, default=32, help="MC samples per choice (likelihood)")
    args = ap.parse_args(argv)
    torch = setup_torch(args.threads, args.device)
    n_q = args.questions or (20 if args.quick else 150)
    m = print_header(
        "lm_choice",
        [
            f"{n_q} questions from Shakespeare val (seed 0): {CTX}-byte context ending at a word boundary, "
            f"true next {CONT} bytes vs {N_CHOICES - 1} distractors of {CONT} bytes from other held-out documents",
            "model: the masked DLM of lm_likelihood.py (its cache; trained first if absent)",
            f"likelihood: choice_scores(method='likelihood'), {args.samples} stratified MC samples, common "
            "random numbers, per token; confidence: choice_scores(method='confidence'), per token",
            "reference: the matched AR model's exact log-likelihood per token (same tokens)",
            f"torch threads {args.threads}, device {args.device}",
        ],
        args,
    )

    dm, ar, tok = load_pair(args.quick, args.device)
    qs = build_questions(load_corpus("shakespeare", "val"), n_q)

    @torch.no_grad()
    def ar_scores(q_ids, choices):
        out = []
        for c in choices:
            x = torch.tensor(q_ids + c, device=next(ar.parameters()).device)[None]
            logits = ar(x)[0, len(q_ids) - 1 : -1].float()
            out.append(-float(torch.nn.functional.cross_entropy(logits, x[0, len(q_ids) :])))
        return out

    methods = {
        "likelihood (ELBO, MC)": lambda q, c: choice_scores(
            dm,
            q,
            c,
            mask_id=tok.mask_id,
            method="likelihood",
            n_samples=args.samples,
            batch_size=32,
            seed=0,
        ),
        "confidence": lambda q, c: choice_scores(
            dm, q, c, mask_id=tok.mask_id, method="confidence"
        ),
        "AR exact (reference)": ar_scores,
    }
    picks = {k: [] for k in methods}
    secs = {k: 0.0 for k in methods}
    for i, q in enumerate(qs):
        q_ids = tok.encode(q["context"])
        c_ids = [tok.encode(c) for c in q["choices"]]
        for name, fn in methods.items():
            t0 = time.perf_counter()
            s = fn(q_ids, c_ids)
            secs[name] += time.perf_counter() - t0
            picks[name].append(max(range(len(s)), key=s.__getitem__))
        if (i + 1) % 50 == 0 or i + 1 == len(qs):
            acc = {
                k: sum(p == qq["answer"] for p, qq in zip(v, qs, strict=False)) / len(v)
                for k, v in picks.items()
            }
            print(
                f"  {i + 1}/{len(qs)}: " + ", ".join(f"{k} {100 * a:.1f}%" for k, a in acc.items()),
                flush=True,
            )
    rows = []
    for name in methods:
        k = sum(p == q["answer"] for p, q in zip(picks[name], qs, strict=False))
        lo, hi = wilson(k, len(qs))
        rows.append(
            {
                "scorer": name,
                "accuracy_pct": 100 * k / len(qs),
                "ci95_low": lo,
                "ci95_high": hi,
                "correct": k,
                "questions": len(qs),
                "seconds_per_question": secs[name] / len(qs),
            }
        )
    agree = sum(
        a == b for a, b in zip(picks["likelihood (ELBO, MC)"], picks["confidence"], strict=False)
    ) / len(qs)
    ex = qs[0]
    notes = [
        f"chance = {100 / N_CHOICES:.0f}%; likelihood and confidence pick the same choice on "
        f"{100 * agree:.1f}% of questions",
        f"example: context ...{ex['context'][-50:]!r}; choices {ex['choices']}; answer {ex['answer']}",
    ]
    finish(
        "lm_choice",
        rows,
        list(rows[0]),
        args.out,
        {
            "date": m["date"],
            "threads": args.threads,
            "device": args.device,
            "torch": m["torch"],
            "mc_samples": args.samples,
        },
        notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
