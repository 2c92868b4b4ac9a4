"""``lm-core fit``: train a masked diffusion LM (or the matched causal AR baseline, SFT, DMax or
the flow LM) from YAML.

    lm-core fit --config configs/lm/tiny-masked.yaml [--section.key value ...]
    lm-core fit --config configs/lm/small-masked.yaml --print_config
    lm-core fit --config configs/lm/illada-8b.yaml --trainer.devices 8 --dry-run [--gpu-gib 80]
    lm-core fit --help

The configuration (sections, ``data`` modules, ``init_from``) is
:mod:`lm_core.train.config`'s; the run itself, its outputs (``last.ckpt``, ``latest/``,
``best/``, ``final/``, ``logs/``) and resume are :func:`lm_core.train.run.run`'s.

``--dry-run`` builds the model on the meta device, prints its parameters and the memory per GPU
(weights, gradients and optimizer state, sharded or not; activations for the context and
activation checkpointing) against ``--gpu-gib`` GiB (default: the visible GPU's, else 80) and
exits (:mod:`lm_core.train.dryrun`).
"""

from __future__ import annotations

import sys

from lm_core.config import ConfigError
from lm_core.train.config import parse
from lm_core.train.dryrun import dry_run
from lm_core.train.run import run


def pop_dry_run(argv: list[str]) -> tuple[list[str], bool, float | None]:
    """(argv without them, --dry-run given, --gpu-gib value or None)."""
    rest, dry, gib = [], False, None
    it = iter(argv)
    for a in it:
        if a in ("--dry-run", "--dry_run"):
            dry = True
        elif a in ("--gpu-gib", "--gpu_gib") or a.startswith(("--gpu-gib=", "--gpu_gib=")):
            value = a.split("=", 1)[1] if "=" in a else next(it, None)
            try:
                gib = float(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"--gpu-gib: expected GiB per GPU (e.g. 80), got {value!r}"
                ) from None
            if gib <= 0:
                raise ConfigError(f"--gpu-gib: expected a positive number, got {value!r}")
        else:
            rest.append(a)
    return rest, dry, gib


def main(argv: list[str] | None = None) -> int:

    argv, dry, gib = pop_dry_run(list(sys.argv[1:] if argv is None else argv))
    cfg = parse(argv)
    if dry:
        print("\n".join(dry_run(cfg, gib)))
        return 0
    run(cfg)
    return 0


__all__ = ["main"]
