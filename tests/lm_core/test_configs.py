"""Every YAML under configs/ parses; lm configs through the real ``lm-core fit`` parser."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lm_core.nn.transformer import Transformer
from lm_core.train.config import parse

ROOT = Path(__file__).resolve().parents[2] / "configs"
LM = sorted((ROOT / "lm").glob("*.yaml"))
TOOLS = {"lm", "ts"}  # configs/<tool>/: lm -> lm-core fit; ts -> tsdiff (parsed by its own tests)


def test_every_config_belongs_to_a_tool_and_is_yaml():
    files = sorted(ROOT.rglob("*.yaml")) + sorted(ROOT.rglob("*.yml"))
    assert {p.stem for p in LM} >= {"tiny-masked", "small-masked", "small-ar", "illada-8b"}
    for p in files:
        assert p.relative_to(ROOT).parts[0] in TOOLS, f"{p}: not under configs/lm or configs/ts"
        assert isinstance(yaml.safe_load(p.read_text()), dict), p


@pytest.mark.parametrize("path", LM, ids=[p.stem for p in LM])
def test_lm_config_parses(path):
    cfg = parse(["--config", str(path)])
    assert cfg.trainer.max_steps > 0
    assert cfg.objective.kind in ("masked", "ar", "sft", "dmax", "flow")
    assert cfg.model.causal == (cfg.objective.kind == "ar")


def test_small_ar_is_matched_to_small_masked():
    masked = parse(["--config", str(ROOT / "lm" / "small-masked.yaml")])
    ar = parse(["--config", str(ROOT / "lm" / "small-ar.yaml")])
    assert {**vars(ar.model), "causal": False} == vars(masked.model)
    assert vars(ar.optim) == vars(masked.optim)
    assert vars(ar.trainer) == vars(masked.trainer)
    assert vars(ar.data) == vars(masked.data)  # same corpus, tokenizer, budget, seed


def test_illada_config_is_the_published_shape():
    cfg = parse(["--config", str(ROOT / "lm" / "illada-8b.yaml")])
    assert (cfg.trainer.strategy, cfg.trainer.precision) == ("fsdp", "bf16-mixed")
    assert cfg.data.split_share == 0.3 and cfg.data.token_budget == 8192
    with torch.device("meta"):
        model = Transformer(cfg.model)
    assert round(model.num_parameters() / 1e9, 2) == 7.62
    assert round(model.num_parameters(exclude_embeddings=True) / 1e9, 2) == 6.98
