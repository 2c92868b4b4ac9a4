"""``lm-core`` command line: a dispatcher over ``lm_core.commands.<name>``.

Each command module defines ``add_arguments(parser)`` (or ``build_parser()``) and ``run(args)``;
errors meant for users are raised as ``UserError`` subclasses and printed as one line.
"""

from __future__ import annotations

import importlib
import sys

from lm_core.outputs import one_line

COMMANDS = {
    "fit": "train a masked diffusion or autoregressive LM from a YAML config",
    "generate": "sample text from a checkpoint",
    "score": "ELBO perplexity bound of a text file, or log-likelihood of a continuation",
    "choose": "multiple-choice scoring (likelihood and confidence)",
    "eval": "lm-evaluation-harness tasks on a checkpoint (needs the eval extra)",
    "prepare": "tokenise a corpus once into memory-mapped shards for fit",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: lm-core {" + ",".join(COMMANDS) + "} [options]\n")
        for name, what in COMMANDS.items():
            print(f"  {name:<10} {what}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"lm-core: unknown command {name!r}; choose from {sorted(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"lm_core.commands.{name}")
    try:
        return int(module.main(rest) or 0)
    except (ValueError, OSError, RuntimeError) as e:  # OSError: a full disk, a read-only folder
        if getattr(e, "user_facing", True) is False:
            raise
        print(f"lm-core {name}: error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
