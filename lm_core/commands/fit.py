"""``lm-core fit``: train a masked diffusion LM (or the matched causal AR baseline, SFT, DMax or
the flow LM) from YAML.

    lm-core fit --config configs/lm/tiny-masked.yaml [--section.key value ...]
    lm-core fit --config configs/lm/small-masked.yaml --print_config
    lm-core fit --help

The configuration (sections, ``data`` modules, ``init_from``) is
:mod:`lm_core.train.config`'s; the run itself, its outputs (``last.ckpt``, ``latest/``,
``best/``, ``final/``, ``logs/``) and resume are :func:`lm_core.train.run.run`'s.
"""

from __future__ import annotations

from lm_core.train.config import parse
from lm_core.train.run import run


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    run(cfg)
    return 0


__all__ = ["main"]
