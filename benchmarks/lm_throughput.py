"""Training throughput: packed variable-length batches (cu_seqlens) vs padded batches.

    python -m benchmarks.lm_throughput            # full (~6 min)
    python -m benchmarks.lm_throughput --quick    # smoke run (~1 min)

Protocol. Real documents of a corpus (``stdlib``: Python standard library files, a heavy-tailed
length distribution; ``shakespeare``: ~4 KB chunks of the plays) are sampled with a fixed seed,
tokenized with a BPE tokenizer trained on them, and cut into pieces of at most ``seq_len - 1``
tokens (+ EOS), so that every setting trains on exactly the same real tokens (nothing truncated).
One masked-diffusion training step = ``DiffusionLM.compute_loss`` + backward + AdamW step, the
same model and the SDPA attention backend for every setting:

- ``packed``: ``lm_core.data.pack_documents`` into rows of ``seq_len`` tokens (B = 1,
  ``cu_seqlens``, block-diagonal attention mask), the layout of ``lm-core fit`` (token_budget =
  max_seq_len);
- ``padded``: ``lm_core.data.pad_documents``, one piece per row, ``batch`` rows of ``seq_len``
  (PAD masked out of attention and loss), the baseline;
- ``padded-dynamic``: the same rows cut to the longest piece in each batch (a stronger baseline).

Each setting runs in a fresh subprocess (so ``ru_maxrss``, the resident-set high-water mark, is its
own); the first 2 batches are warm-up, then the same pieces are timed (capped at ``--max-seconds``,
in which case only the batches done count). Reported: real (non-pad) tokens/s, slot utilisation
(real / computed positions), peak RSS and peak RSS above the post-setup baseline. Goal: packed
real tokens/s >= 1.5x padded.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import base_parser, finish, print_header, save_png, setup_torch  # noqa: E402
from lm_core.config import ModelConfig, ObjectiveConfig, OptimConfig  # noqa: E402
from lm_core.data import build_tokenizer, load_corpus, pack_documents, pad_documents  # noqa: E402
from lm_core.train.module import DiffusionLM  # noqa: E402

SHAPE = {"d_model": 192, "n_layers": 4, "n_heads": 4}
SEQ_LEN, BATCH, BPE_VOCAB = 1024, 4, 4096
SETTINGS = ("packed", "padded", "padded-dynamic")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def pieces_of(corpus: str, n_docs: int, seq_len: int):
    """(tokenizer, pieces): fixed-seed sample of train documents, cut to <= seq_len - 1 tokens."""
    docs = load_corpus(corpus, "train")
    random.Random(0).shuffle(docs)
    docs = docs[:n_docs]
    tok = build_tokenizer("bpe", docs, BPE_VOCAB)
    pieces = []
    for ids in tok.encode_batch(docs):
        pieces += [ids[i : i + seq_len - 1] for i in range(0, len(ids), seq_len - 1)]
    random.Random(1).shuffle(pieces)
    return tok, pieces


def batches_for(setting: str, pieces, tok, seq_len: int, batch: int):
    if setting == "packed":
        return pack_documents(pieces, seq_len, tok.eos_id)
    out = pad_documents(pieces, seq_len, tok.pad_id, tok.eos_id, batch)
    if setting == "padded-dynamic":
        out = [{k: v[:, : int(b["valid"].sum(-1).max())] for k, v in b.items()} for b in out]
    return out


def worker(a) -> dict:
    """One setting in this process: returns the measurements as a dict."""
    torch = setup_torch(a.threads)

    tok, pieces = pieces_of(a.corpus, a.docs, a.seq_len)
    # the first pieces up to the real-token target (the same list for every setting)
    chosen, n = [], 0
    for p in pieces:
        if n >= a.tokens:
            break
        chosen.append(p)
        n += len(p) + 1
    batches = batches_for(a.setting, chosen, tok, a.seq_len, a.batch)
    warm = batches_for(a.setting, pieces[-3 * a.batch :], tok, a.seq_len, a.batch)[:2]
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=tok.vocab_size, max_seq_len=a.seq_len, attn_backend="sdpa", **SHAPE
    )
    module = DiffusionLM(
        cfg, ObjectiveConfig(), OptimConfig(lr=1e-3), max_steps=10**6, mask_id=tok.mask_id
    )
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def step(b):
        loss, _ = module.compute_loss(b, gen)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    base_rss = rss_mb()
    for b in warm:
        step(b)
    real = slots = done = 0
    t0 = time.perf_counter()
    for b in batches:
        step(b)
        real += int(b["valid"].sum()) if "valid" in b else b["input_ids"].numel()
        slots += b["input_ids"].numel()
        done += 1
        if time.perf_counter() - t0 > a.max_seconds:
            break
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"setting": a.setting, "corpus": a.corpus, "real_tokens": real, "slots": slots,
            "batches": done, "of_batches": len(batches), "seconds": dt,
            "real_tokens_per_s": real / dt, "utilisation": real / slots, "peak_rss_mb": peak,
            "peak_above_base_mb": peak - base_rss, "pieces": len(chosen),
            "mean_piece_len": sum(len(p) + 1 for p in chosen) / len(chosen)}  # fmt: skip


def main(argv=None) -> int:
    ap = base_parser("Packed vs padded training throughput on real document lengths.")
    ap.add_argument("--corpus", nargs="+", default=None, help="stdlib and/or shakespeare")
    ap.add_argument(
        "--tokens", type=int, default=None, help="real tokens per setting (full 24000, quick 6000)"
    )
    ap.add_argument(
        "--max-seconds", type=float, default=None, help="time cap per setting (full 40, quick 15)"
    )
    ap.add_argument("--docs", type=int, default=400, help="documents sampled from the corpus")
    ap.add_argument("--seq-len", type=int, default=SEQ_LEN)
    ap.add_argument("--batch", type=int, default=BATCH, help="rows per padded batch")
    ap.add_argument("--setting", choices=SETTINGS, help=argparse_hidden())
    ap.add_argument("--worker", action="store_true", help=argparse_hidden())
    a = ap.parse_args(argv)
    a.tokens = a.tokens or (6000 if a.quick else 24000)
    a.max_seconds = a.max_seconds or (15.0 if a.quick else 40.0)
    a.corpus = a.corpus or (["stdlib"] if a.quick else ["stdlib", "shakespeare"])
    if a.worker:
        a.corpus = a.corpus[0]
        print(json.dumps(worker(a)))
        return 0
    torch = setup_torch(a.threads)
    m = print_header(
        "lm_throughput",
        [
            f"corpora {a.corpus}: {a.docs} train documents (seed 0), BPE {BPE_VOCAB} trained on them, "
            f"cut into pieces <= {a.seq_len - 1} tokens + EOS; the same ~{a.tokens} real tokens per setting",
            f"model: masked DLM d_model={SHAPE['d_model']}, {SHAPE['n_layers']} layers, context {a.seq_len}, "
            "SDPA backend, fp32, AdamW; step = compute_loss + backward + clip + step",
            f"packed: rows of {a.seq_len} tokens with cu_seqlens; padded: {a.batch} rows x {a.seq_len}; "
            "padded-dynamic: rows cut to the batch's longest piece",
            f"fresh subprocess per setting (ru_maxrss = peak RSS); 2 warm-up batches; cap {a.max_seconds:.0f}s",
            f"torch threads {a.threads}, device cpu (torch {torch.__version__})",
        ],
        a,
    )
    rows = []
    for corpus in a.corpus:
        for s in SETTINGS:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.lm_throughput",
                "--worker",
                "--setting",
                s,
                "--corpus",
                corpus,
                "--tokens",
                str(a.tokens),
                "--max-seconds",
                str(a.max_seconds),
                "--docs",
                str(a.docs),
                "--seq-len",
                str(a.seq_len),
                "--batch",
                str(a.batch),
                "--threads",
                str(a.threads),
            ]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
            if p.returncode != 0:
                print(p.stderr[-3000:])
                raise SystemExit(f"worker {corpus}/{s} failed")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(
                f"  {corpus:>11} {s:>15}: {r['real_tokens_per_s']:,.0f} real tok/s, utilisation "
                f"{r['utilisation']:.2f}, peak RSS {r['peak_rss_mb']:.0f} MB "
                f"({r['batches']}/{r['of_batches']} batches, {r['seconds']:.0f}s)",
                flush=True,
            )
    notes = []
    for corpus in a.corpus:
        by = {r["setting"]: r for r in rows if r["corpus"] == corpus}
        for r in by.values():
            r["speedup_vs_padded"] = r["real_tokens_per_s"] / by["padded"]["real_tokens_per_s"]
        sp = by["packed"]["speedup_vs_padded"]
        dyn = by["packed"]["real_tokens_per_s"] / by["padded-dynamic"]["real_tokens_per_s"]
        notes.append(
            f"{corpus}: packed / padded real tokens/s = {sp:.2f}x (goal >= 1.5x: "
            f"{'MET' if sp >= 1.5 else 'MISSED'}); packed / padded-dynamic = {dyn:.2f}x; "
            f"mean piece {by['packed']['mean_piece_len']:.0f} tokens of {a.seq_len}"
        )
    try:
        import matplotlib  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = [f"{r['corpus']}\n{r['setting']}" for r in rows]
        ax.bar(
            range(len(rows)),
            [r["real_tokens_per_s"] for r in rows],
            color=["C0" if r["setting"] == "packed" else "C1" for r in rows],
        )
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_ylabel("real tokens / s (training)")
        if not a.quick:
            print(f"wrote {save_png(fig, a.out, 'lm_throughput')}")
    except ImportError:
        pass
    cols = [
        "corpus",
        "setting",
        "real_tokens_per_s",
        "speedup_vs_padded",
        "utilisation",
        "real_tokens",
        "batches",
        "seconds",
        "peak_rss_mb",
        "peak_above_base_mb",
        "mean_piece_len",
    ]
    finish(
        "lm_throughput",
        rows,
        cols,
        a.out,
        {"date": m["date"], "threads": a.threads, "torch": m["torch"], "seq_len": a.seq_len},
        notes,
    )
    return 0


def argparse_hidden():
    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
