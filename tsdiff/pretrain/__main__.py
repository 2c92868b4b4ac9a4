"""``python -m tsdiff.pretrain --config configs/ts/pretrain.yaml [--resume auto]``: the recipe of
:mod:`tsdiff.pretrain.recipe` from a YAML file. Bad flags, config fields, corpus files or output
places print one line and exit with status 2."""

from __future__ import annotations

import sys

from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser, set_parsing_settings

from lm_core.checkpoint import CheckpointError
from lm_core.outputs import OutputError, one_line
from tsdiff.pretrain.corpus import CorpusConfig
from tsdiff.pretrain.recipe import (
    BaseModelConfig,
    PretrainConfig,
    PretrainTraining,
    pretrain,
)


def build_parser() -> ArgumentParser:
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    p = ArgumentParser(prog="python -m tsdiff.pretrain", exit_on_error=False,
                       description="Pretrain the tsdiff base (tsdiff.pretrain.recipe).")  # fmt: skip
    p.add_argument("--config", action=ActionConfigFile, help="YAML (configs/ts/pretrain.yaml).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=str, default="runs/tsdiff-base")
    p.add_argument("--export", type=str | None, default=None)
    p.add_class_arguments(BaseModelConfig, "model")
    p.add_class_arguments(PretrainTraining, "training")
    p.add_class_arguments(CorpusConfig, "corpus")
    p.add_argument("--resume", type=str | None, default=None,
                   help="'auto': continue OUT/.train/last.ckpt when there is one.")  # fmt: skip
    return p


def parse(argv: list[str]) -> tuple[PretrainConfig, str | None]:
    try:
        ns = build_parser().parse_args(argv)
    except ArgumentError as e:
        raise ValueError(one_line(str(e))) from None
    cfg = PretrainConfig(
        seed=ns.seed, out=ns.out, export=ns.export,
        model=BaseModelConfig(**vars(ns.model)), training=PretrainTraining(**vars(ns.training)),
        corpus=CorpusConfig(**vars(ns.corpus)),
    )  # fmt: skip
    return cfg, ns.resume


def main(argv: list[str] | None = None) -> int:
    try:
        cfg, resume = parse(list(sys.argv[1:] if argv is None else argv))
        pretrain(cfg, resume=resume)
    except (ValueError, OutputError, CheckpointError) as e:
        print(f"tsdiff.pretrain: error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"tsdiff.pretrain: error: {where}{e.strerror or one_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
