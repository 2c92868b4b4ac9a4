"""``lm-core prepare``: tokenise a corpus once into memory-mapped shards for ``lm-core fit``.

    lm-core prepare --data.train SPEC [--data.val SPEC] --out DIR
        [--tokenizer byte|bpe|TOKENIZER_DIR|tokenizer.json] [--bpe-vocab-size 4096]
        [--mask-token T --eos-token T --pad-token T] [--shard-tokens N]

``SPEC`` is what ``--data.train`` takes in ``lm-core fit`` (a built-in corpus, text or JSONL
files, globs; repeatable). The documents are split into train and val exactly as ``fit`` splits
them, tokenised once and written under ``DIR`` (layout: :mod:`lm_core.data.shards`) with the
tokenizer and a manifest naming its hash and vocabulary size. Then
``lm-core fit --config ... --data.train DIR`` reads the shards (each rank its share) and the
folder's tokenizer; a folder made with another tokenizer than the run's is refused in one line.
"""

from __future__ import annotations

import argparse
import time

from lm_core.data.corpora import train_val
from lm_core.data.shards import prepare_splits
from lm_core.data.tokenizers import resolve_tokenizer
from lm_core.outputs import ensure_writable


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lm-core prepare", description=__doc__.splitlines()[0])
    p.add_argument("--data.train", dest="train", action="append", required=True,
                   help="training corpus (repeatable): built-in name, file, glob, x.jsonl:field")  # fmt: skip
    p.add_argument("--data.val", dest="val", action="append", default=None,
                   help="validation corpus (default: fit's held-out share of the train documents)")  # fmt: skip
    p.add_argument("--tokenizer", default="byte",
                   help="byte, bpe (trained here), a tokenizer folder, or a tokenizer.json file")  # fmt: skip
    p.add_argument("--bpe-vocab-size", type=int, default=4096)
    for role in ("mask", "eos", "pad"):
        p.add_argument(f"--{role}-token", default=None,
                       help=f"tokenizer.json: the {role.upper()} token's text (default: by name)")  # fmt: skip
    p.add_argument("--shard-tokens", type=int, default=1 << 28, help="most tokens per shard")
    p.add_argument("--out", required=True, help="output folder (replaced whole)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ensure_writable(args.out)
    t0 = time.perf_counter()
    spec = lambda v: v[0] if v and len(v) == 1 else v  # noqa: E731
    train, val = train_val(spec(args.train), spec(args.val))
    specials = {r: getattr(args, f"{r}_token") for r in ("mask", "eos", "pad")}
    tok = resolve_tokenizer(
        args.tokenizer, train, args.bpe_vocab_size, {k: v for k, v in specials.items() if v}
    )
    m = prepare_splits(
        train, val, tok, args.out, shard_tokens=args.shard_tokens,
        source={"train": args.train, "val": args.val, "tokenizer": args.tokenizer},
    )  # fmt: skip
    tr, va = m["splits"]["train"], m["splits"]["val"]
    print(
        f"wrote {args.out}: train {tr['docs']} documents, {tr['tokens']:,} tokens in "
        f"{len(tr['shards'])} shard(s); val {va['docs']} documents, {va['tokens']:,} tokens; "
        f"tokenizer {tok.kind} ({tok.vocab_size} ids, sha256 {m['tokenizer']['sha256'][:12]}); "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0
