"""Masked DLM vs flow LM (ELF-style) vs AR at matched size and tokens: held-out Shakespeare generation.

    python -m benchmarks.lm_flow            # full: trains the flow LM (500 steps;
                                                      #  masked/AR reused from lm_likelihood), then samples
    python -m benchmarks.lm_flow --quick    # smoke: 40-step models, 8 prompts, one setting
                                                      #  per sampler family

Cost on 2 shared CPU threads depends heavily on the load of the machine: unloaded, the flow
training is ~5-8 minutes and sampling ~5 minutes; the quick mode ~1-2 minutes once its models are
cached (each stage reuses the checkpoints under ``.data/bench``).

Protocol.

- **Models.** Three denoisers of one Transformer shape (``benchmarks.lm_likelihood.SHAPE``:
  d_model 192, 4 layers, 4 heads), trained through the library (``lm_core.train.run.run``) on
  the embedded Shakespeare train split with the same BPE tokenizer, seed, optimiser, WSD schedule,
  number of optimiser steps and tokens per step (256 packed tokens):

  - masked DLM and AR baseline: the matched pair of ``benchmarks/lm_likelihood.py`` (its cached
    checkpoints under ``.data/bench/lm_likelihood/<mode>/`` are reused when present and trained
    for the same number of steps; otherwise trained here the same way);
  - flow LM (``objective.kind: flow``, :mod:`lm_core.flow`): the **trained masked DLM above is its
    frozen encoder** (ELF style, ``objective.flow.encoder_ckpt``: final hidden states with the
    encoder's input embedding of the token appended, normalised, through a 32-dim bottleneck; an
    MLP decoder reads tokens out at the end), a short codec phase
    fits the bottleneck and decoder, then the time-conditioned denoiser trains for the same steps
    on the same packed token stream cut into rows of at most 128 tokens (each row its own noise
    level and prompt). Checkpoint cached under ``.data/bench/lm_flow/<mode>/flow``.

- **Task.** N held-out prompts (default 64): windows of the Shakespeare ``val`` split, each 32 BPE
  tokens of prompt followed by the true 64-token continuation (windows evenly spread over the
  split, non-overlapping). Every sampler generates exactly 64 tokens after each prompt.

- **Samplers.** masked: ``low_confidence`` (LLaDA) at T = 0.8, 64 and 32 steps, blocks of 32;
  ``threshold`` (Fast-dLLM, tau 0.9) at T = 0.8; ``random`` order (MDLM ancestral) at T = 1.0,
  64 and 16 steps. flow: Euler ODE and re-noising SDE (churn 0.5) at 8 / 16 / 32 steps, no
  guidance. AR: ancestral sampling at T = 1.0 and 0.8 (a KV-cached loop written here:
  lm_core has no AR sampler).

- **Scores.** gen-ppl: exp of the mean NLL per generated token under the **trained AR baseline
  above, which is the scorer**, given the prompt (tokens up to and including a first EOS; the
  95 % interval is a bootstrap over prompts). Unigram entropy (bits) of the generated tokens,
  per sequence (mean) and pooled over all sequences: a degenerate sampler lowers gen-ppl and
  entropy together, so read them side by side. NFE per sequence = denoiser calls per sample
  (forward passes of the whole batch; the AR count is one per token with a KV cache).
  tokens/s = generated tokens / wall seconds for the batch (2 shared CPU threads; noisy).
  The reference row is the held-out continuation itself, scored the same way.

Caveat: the scorer is the AR model itself, so its own T = 1 samples are scored by the
distribution that drew them (their gen-ppl estimates exp(its entropy rate)); gen-ppl below the
reference row with entropy well below it means a sharpened (or degenerate) sampler, not better text.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch.nn.functional as F

from benchmarks.common import (  # noqa: E402
    CACHE,
    base_parser,
    finish,
    print_header,
    save_png,
    setup_torch,
)
from benchmarks.lm_likelihood import (  # noqa: E402
    FULL_STEPS,
    QUICK_STEPS,
    SHAPE,
    TOKEN_BUDGET,
    fit_args,
    load_pair,
    model_dir,
    train_pair,
)
from lm_core.data.corpora import load_corpus  # noqa: E402
from lm_core.flow import load_flow_checkpoint  # noqa: E402
from lm_core.text.flow import generate_flow  # noqa: E402
from lm_core.text.generate import generate  # noqa: E402
from lm_core.train.config import parse  # noqa: E402
from lm_core.train.run import run  # noqa: E402

PROMPT_LEN, GEN_LEN = 32, 64
FULL_PROMPTS, QUICK_PROMPTS = 64, 8
FLOW = {  # the flow's own settings (the rest of the run is the masked DLM's fit_args)
    "d_latent": 32,
    "encoder_features": "hidden+embedding",
    "decoder_hidden": 512,
    "codec_lr": 0.003,
    "decoder_noise": 0.2,
    "self_condition": True,
}
FLOW_ROW = 128  # data.max_doc_len: rows of at most 128 tokens, one noise level and prompt each
CODEC_STEPS_FULL, CODEC_STEPS_QUICK = 300, 30


# --------------------------------------------------------------------------- training


def flow_fit_args(steps: int, codec_steps: int, out: Path, encoder: Path, device: str) -> list[str]:
    """The masked DLM's ``lm-core fit`` arguments with the objective switched to flow."""
    base = [
        a
        for a in fit_args("masked", steps, out, device)
        if not a.startswith(("--objective.", "--model.causal"))
    ]
    return [
        *base,
        "--model.causal=false",
        "--model.time_conditioning=true",
        "--objective.kind=flow",
        f"--objective.flow.encoder_ckpt={encoder}",
        f"--objective.flow.codec_steps={codec_steps}",
        *(f"--objective.flow.{k}={str(v).lower()}" for k, v in FLOW.items()),
        f"--data.max_doc_len={FLOW_ROW}",
    ]


def train_flow(quick: bool, steps: int, device: str, force: bool = False) -> dict:
    """Train (or reuse) the flow LM whose frozen encoder is the cached masked DLM."""
    encoder = model_dir(quick, device) / "masked"
    root = (
        CACHE / "lm_flow" / (("quick" if quick else "full") + ("-cuda" if device == "cuda" else ""))
    )
    final, meta_file = root / "flow", root / "flow.json"
    codec_steps = CODEC_STEPS_QUICK if quick else CODEC_STEPS_FULL
    want = {
        "steps": steps,
        "codec_steps": codec_steps,
        "flow": FLOW,
        "row": FLOW_ROW,
        "encoder": str(encoder),
        "encoder_mtime": (encoder / "model.safetensors").stat().st_mtime,
    }
    if not force and final.is_dir() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if all(meta.get(k) == v for k, v in want.items()):
            print(f"reusing {final} ({steps} steps, trained in {meta['train_s']:.0f}s)")
            return meta
    print(
        f"training flow: {codec_steps} codec steps, then {steps} steps of {TOKEN_BUDGET} tokens ..."
    )
    t0 = time.perf_counter()
    trainer, module = run(
        parse(flow_fit_args(steps, codec_steps, root / "flow-run", encoder, device))
    )
    dt = time.perf_counter() - t0
    module.export(final, trainer.datamodule.tokenizer, {"steps": steps})
    meta = {
        **want,
        "steps": int(trainer.global_step),
        "train_s": dt,
        "tokens": int(trainer.global_step) * TOKEN_BUDGET,
        "params": module.net.num_parameters(),
        "params_no_emb": module.net.num_parameters(exclude_embeddings=True),
    }
    root.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps(meta))
    return meta


# --------------------------------------------------------------------------- data and scores


def heldout_windows(tok, n: int) -> list[tuple[list[int], list[int]]]:
    """n (prompt, continuation) id pairs: non-overlapping windows evenly spread over the val split."""
    W = PROMPT_LEN + GEN_LEN
    docs = [tok.encode(t) for t in load_corpus("shakespeare", "val")]
    cands = [(d, s) for d, ids in enumerate(docs) for s in range(0, len(ids) - W + 1, W)]
    if len(cands) < n:
        raise ValueError(f"only {len(cands)} held-out windows of {W} tokens, asked for {n}")
    pick = [cands[(i * len(cands)) // n] for i in range(n)]
    return [(docs[d][s : s + PROMPT_LEN], docs[d][s + PROMPT_LEN : s + W]) for d, s in pick]


def cut_eos(row: list[int], eos_id: int) -> list[int]:
    """Generated ids up to and including the first EOS (the EOS is scored: it ends the text)."""
    return row[: row.index(eos_id) + 1] if eos_id in row else row


def unigram_entropy(ids: list[int]) -> float:
    """Entropy in bits of the empirical unigram distribution of ``ids``."""
    if not ids:
        return float("nan")
    counts: dict[int, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    n = len(ids)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def ar_nll(ar, prompts: list[list[int]], conts: list[list[int]], torch) -> list[tuple[float, int]]:
    """Per sequence (NLL in nats, tokens) of the continuation given the prompt, under ``ar``.

    All prompts have one length; shorter continuations are right-padded, which a causal model
    cannot see, and padded cells are not counted. One forward pass per 32 sequences.
    """
    P, out = len(prompts[0]), []
    with torch.no_grad():
        for i in range(0, len(prompts), 32):
            ps, cs = prompts[i : i + 32], conts[i : i + 32]
            L = max(max(len(c) for c in cs), 1)
            x = torch.tensor([p + c + [0] * (L - len(c)) for p, c in zip(ps, cs, strict=True)])
            logp = -F.cross_entropy(
                ar(x)[:, P - 1 : -1].double().transpose(1, 2), x[:, P:], reduction="none"
            )
            for b, c in enumerate(cs):
                out.append((-float(logp[b, : len(c)].sum()), len(c)))
    return out


def gen_ppl(
    nll: list[tuple[float, int]], boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Pooled exp(sum NLL / tokens) and its 95 % bootstrap interval over sequences."""
    tot = sum(v for v, _ in nll) / max(sum(n for _, n in nll), 1)
    rng = random.Random(seed)
    stats = []
    for _ in range(boot):
        s = [nll[rng.randrange(len(nll))] for _ in nll]
        stats.append(sum(v for v, _ in s) / max(sum(n for _, n in s), 1))
    stats.sort()
    return math.exp(tot), math.exp(stats[int(0.025 * boot)]), math.exp(stats[int(0.975 * boot) - 1])


# --------------------------------------------------------------------------- samplers


def ar_sample(ar, prompts: list[list[int]], gen_len: int, temperature: float, seed: int, torch):
    """Ancestral sampling from the causal model with a KV cache; returns (rows, NFE, seconds).

    All prompts have the same length (no padding). One forward pass per generated token: the
    prompt pass gives the first token's logits, then each new token is fed alone with the cache.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.tensor(prompts)
    B, P = x.shape
    t0 = time.perf_counter()
    out = []
    with torch.no_grad():
        logits, kv = ar(x, return_kv=True)
        last = logits[:, -1]
        for k in range(gen_len):
            probs = torch.softmax(last.double() / temperature, -1)
            nxt = torch.multinomial(probs, 1, generator=g)  # [B, 1]
            out.append(nxt)
            if k == gen_len - 1:
                break
            pos = torch.full((B, 1), P + k, dtype=torch.long)
            logits, new = ar(nxt, positions=pos, kv_prefix=kv, return_kv=True)
            kv = [
                (torch.cat([a, na], 1), torch.cat([b, nb], 1))
                for (a, b), (na, nb) in zip(kv, new, strict=True)
            ]
            last = logits[:, -1]
    return torch.cat(out, 1).tolist(), gen_len, time.perf_counter() - t0


class _IdTokenizer:
    """Lets :func:`lm_core.flow.generate_flow` take id prompts and return raw ids.

    ``encode(i)`` is the i-th prompt's ids, ``decode`` returns the ids unchanged, and ``eos_id``
    is -1 so that the library does not cut rows (EOS is handled here, as for the other models).
    """

    def __init__(self, prompts: list[list[int]], pad_id: int) -> None:
        self.prompts, self.pad_id, self.eos_id = prompts, pad_id, -1

    def encode(self, i):
        return self.prompts[i]

    def decode(self, ids):
        return list(ids)


def codec_accuracy(flow_model, windows, torch) -> float:
    """Share of held-out tokens that the flow's codec round-trips (decode(encode(text)))."""
    hit = tot = 0
    with torch.no_grad():
        for p, c in windows:
            x = torch.tensor(p + c)[None]
            hit += int((flow_model.codec.decode(flow_model.codec.encode(x)) == x).sum())
            tot += x.numel()
    return hit / tot


def settings(quick: bool) -> list[dict]:
    """The sampler settings of the table (model, sampler, steps, temperature, extras)."""
    if quick:  # one setting per sampler family
        return [
            {"model": "masked", "sampler": "low_confidence", "steps": 16, "temp": 0.8},
            {"model": "masked", "sampler": "threshold", "steps": 64, "temp": 0.8, "tau": 0.9},
            {"model": "masked", "sampler": "random", "steps": 16, "temp": 1.0},
            {"model": "flow", "sampler": "euler", "steps": 8, "temp": float("nan")},
            {"model": "flow", "sampler": "sde", "steps": 8, "temp": float("nan")},
            {"model": "AR", "sampler": "ancestral", "steps": GEN_LEN, "temp": 1.0},
        ]
    s = [
        {"model": "masked", "sampler": "low_confidence", "steps": 64, "temp": 0.8},
        {"model": "masked", "sampler": "low_confidence", "steps": 32, "temp": 0.8},
        {"model": "masked", "sampler": "threshold", "steps": 64, "temp": 0.8, "tau": 0.9},
        {"model": "masked", "sampler": "random", "steps": 64, "temp": 1.0},
        {"model": "masked", "sampler": "random", "steps": 16, "temp": 1.0},
    ]
    for sampler in ("euler", "sde"):
        for steps in (8, 16, 32):
            s.append({"model": "flow", "sampler": sampler, "steps": steps, "temp": float("nan")})
    s += [
        {"model": "AR", "sampler": "ancestral", "steps": GEN_LEN, "temp": 1.0},
        {"model": "AR", "sampler": "ancestral", "steps": GEN_LEN, "temp": 0.8},
    ]
    return s


def run_setting(st: dict, models: dict, prompts: list[list[int]], seed: int, torch):
    """Generate GEN_LEN tokens after every prompt; returns (raw rows, NFE per sequence, seconds)."""
    tok = models["tok"]
    if st["model"] == "masked":
        r = generate(
            models["masked"], tok, prompts, gen_length=GEN_LEN, block_length=32,
            steps=st["steps"], sampler=st["sampler"], temperature=st["temp"],
            tau=st.get("tau", 0.9), seed=[seed * 100003 + b for b in range(len(prompts))],
        )  # fmt: skip
        return r.sequences.tolist(), r.stats.nfe, r.stats.seconds
    if st["model"] == "flow":
        shim = _IdTokenizer(prompts, tok.pad_id)
        rows, s = generate_flow(
            models["flow"], shim, list(range(len(prompts))), gen_length=GEN_LEN,
            steps=st["steps"], sampler=st["sampler"], churn=0.5, cfg_scale=0.0, seed=seed,
        )  # fmt: skip
        return rows, s.forward_passes, s.seconds
    return ar_sample(models["ar"], prompts, GEN_LEN, st["temp"], seed, torch)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = base_parser("Masked DLM vs flow LM (ELF) vs AR: gen-ppl, unigram entropy, NFE.")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"optimiser steps per model (full {FULL_STEPS}, quick {QUICK_STEPS}; lm_likelihood's)",
    )
    ap.add_argument(
        "--prompts",
        type=int,
        default=None,
        help=f"held-out prompts (full {FULL_PROMPTS}, quick {QUICK_PROMPTS})",
    )
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    ap.add_argument("--retrain-flow", action="store_true", help="ignore the cached flow checkpoint")
    args = ap.parse_args(argv)
    torch = setup_torch(args.threads, args.device)
    if args.device != "cpu":
        raise SystemExit(
            "lm_flow samples on CPU only (the sampling loops here keep tensors on CPU)"
        )
    steps = args.steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    n_prompts = args.prompts or (QUICK_PROMPTS if args.quick else FULL_PROMPTS)
    codec_steps = CODEC_STEPS_QUICK if args.quick else CODEC_STEPS_FULL
    sh = SHAPE
    m = print_header(
        "lm_flow",
        [
            f"scale: Transformer d_model={sh['d_model']}, {sh['n_layers']} layers, {sh['n_heads']} heads "
            f"for all three denoisers; {steps} optimiser steps x {TOKEN_BUDGET} packed tokens = "
            f"{steps * TOKEN_BUDGET:,} training tokens each; BPE 2048; AdamW lr 2e-3 WSD; seed 0",
            "masked DLM + AR: benchmarks/lm_likelihood.py's matched pair (same init, tokens, order); "
            "reused from its cache when trained for the same steps",
            f"flow LM (lm_core.flow, ELF-style): frozen encoder = the trained masked DLM above "
            "(final hidden states + its input embedding of the token), "
            f"d_latent {FLOW['d_latent']}, MLP decoder {FLOW['decoder_hidden']}, "
            f"{codec_steps} codec steps, then the time-conditioned denoiser on the same packed stream "
            f"cut into rows <= {FLOW_ROW} tokens; self-conditioning on; no guidance at sampling",
            f"eval: {n_prompts} held-out Shakespeare (val split) windows: {PROMPT_LEN}-token prompt, "
            f"{GEN_LEN} tokens generated per sampler; the true {GEN_LEN}-token continuation is the reference",
            "gen-ppl under the trained AR baseline (the scorer), 95% bootstrap over prompts; unigram "
            "entropy (bits) per sequence (mean) and pooled; NFE per sequence; tokens/s on this machine",
            f"torch threads {args.threads}, device {args.device}, sampling seed {args.seed}",
        ],
        args,
    )
    t_all = time.perf_counter()
    info = train_pair(args.quick, steps, args.device)
    finfo = train_flow(args.quick, steps, args.device, force=args.retrain_flow)
    dm, ar, tok = load_pair(args.quick, args.device)

    root = CACHE / "lm_flow" / ("quick" if args.quick else "full")
    flow_model, _, _ = load_flow_checkpoint(root / "flow")
    dm.eval()
    ar.eval()
    models = {"masked": dm, "ar": ar, "flow": flow_model, "tok": tok}
    windows = heldout_windows(tok, n_prompts)
    prompts = [p for p, _ in windows]
    acc = codec_accuracy(flow_model, windows, torch)
    print(f"flow codec round-trip token accuracy on the held-out windows: {acc:.3f}", flush=True)

    rows, points = [], []

    def add(label: dict, gen: list[list[int]], nfe, seconds):
        conts = [cut_eos(g, tok.eos_id) for g in gen]
        nll = ar_nll(ar, prompts, conts, torch)
        ppl, lo, hi = gen_ppl(nll)
        flat = [i for c in conts for i in c]
        ent_seq = sum(unigram_entropy(c) for c in conts) / len(conts)
        row = {
            **label,
            "NFE/seq": nfe,
            "gen_ppl": ppl,
            "ppl_95_lo": lo,
            "ppl_95_hi": hi,
            "entropy_seq": ent_seq,
            "entropy_all": unigram_entropy(flat),
            "eos_share": sum(1 for g in gen if tok.eos_id in g) / len(gen),
            "tokens/s": (len(gen) * GEN_LEN / seconds) if seconds else float("nan"),
        }
        rows.append(row)
        points.append(row)
        print(
            f"  {label['model']:>9} {label['sampler']:>15} steps {label['steps']!s:>3}: gen-ppl {ppl:.1f} "
            f"[{lo:.1f}, {hi:.1f}], entropy {ent_seq:.2f}/{row['entropy_all']:.2f} bits, NFE {nfe}, "
            f"{row['tokens/s']:.0f} tok/s",
            flush=True,
        )

    add(
        {"model": "reference", "sampler": "held-out text", "steps": "", "temp": float("nan")},
        [c for _, c in windows],
        "",
        0.0,
    )
    for st in settings(args.quick):
        gen, nfe, sec = run_setting(st, models, prompts, args.seed, torch)
        label = {k: st[k] for k in ("model", "sampler", "steps", "temp")}
        if st["sampler"] == "threshold":
            label["sampler"] = f"threshold {st['tau']}"
        if st["model"] == "flow":
            label["sampler"] = "euler ODE" if st["sampler"] == "euler" else "SDE churn 0.5"
        add(label, gen, nfe, sec)

    def best(model):
        cand = [r for r in rows if r["model"] == model]
        return min(cand, key=lambda r: r["gen_ppl"])

    ref = rows[0]
    notes = [
        f"scale: {steps} steps x {TOKEN_BUDGET} tokens per model; train s: masked "
        f"{info['masked']['train_s']:.0f}, AR {info['ar']['train_s']:.0f}, flow {finfo['train_s']:.0f} "
        f"(incl. {codec_steps} codec steps; cached runs show their original time); params: masked/AR "
        f"{info['masked']['params']:,} ({info['masked']['params_no_emb']:,} without embeddings), flow denoiser "
        f"{finfo['params']:,} (+ frozen encoder, bottleneck and decoder)",
        f"flow codec round-trip accuracy on the held-out windows: {acc:.3f} (an upper bound on what "
        "the flow can decode exactly)",
        f"reference (held-out text): gen-ppl {ref['gen_ppl']:.1f}, entropy {ref['entropy_seq']:.2f} bits/seq; "
        + "; ".join(
            f"lowest gen-ppl {mm}: {best(mm)['sampler']} {best(mm)['steps']} steps "
            f"({best(mm)['gen_ppl']:.1f}, entropy {best(mm)['entropy_seq']:.2f})"
            for mm in ("masked", "flow", "AR")
        ),
        "scorer = the trained AR baseline of this table (it favours its own T=1 samples); "
        "NFE for masked threshold is measured (dynamic); flow NFE = steps (no guidance); "
        f"whole run {time.perf_counter() - t_all:.0f}s",
    ]
    try:
        import matplotlib  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        fig, ax = plt.subplots(figsize=(6, 4.5))
        colours = {"reference": "k", "masked": "tab:blue", "flow": "tab:orange", "AR": "tab:green"}
        for r in points:
            ax.scatter(r["entropy_seq"], r["gen_ppl"], c=colours[r["model"]], s=18)
            ax.annotate(
                f"{r['sampler'].split()[0]} {r['steps']}",
                (r["entropy_seq"], r["gen_ppl"]),
                fontsize=6,
            )
        for k, c in colours.items():
            ax.scatter([], [], c=c, label=k)
        ax.set_yscale("log")
        ax.set_xlabel("unigram entropy per sequence (bits)")
        ax.set_ylabel("gen-ppl under the AR baseline")
        ax.set_title(f"held-out Shakespeare, {n_prompts} prompts x {GEN_LEN} tokens")
        ax.legend(fontsize=7)
        if not args.quick:
            print(f"wrote {save_png(fig, args.out, 'lm_flow')}")
    except ImportError:
        pass
    cols = [
        "model",
        "sampler",
        "steps",
        "temp",
        "NFE/seq",
        "gen_ppl",
        "ppl_95_lo",
        "ppl_95_hi",
        "entropy_seq",
        "entropy_all",
        "eos_share",
        "tokens/s",
    ]
    finish(
        "lm_flow",
        [{"codec": FLOW["encoder_features"], **r} for r in rows],
        cols,
        args.out,
        {
            "date": m["date"],
            "threads": args.threads,
            "device": args.device,
            "torch": m["torch"],
            "train_steps": steps,
            "train_tokens": steps * TOKEN_BUDGET,
            "prompts": n_prompts,
            "codec_acc": acc,
        },
        notes,
        key=("codec",),  # the flow codec's features: rows of other codecs are kept
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
