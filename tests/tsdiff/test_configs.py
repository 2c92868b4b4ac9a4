"""Every YAML under configs/ts parses through `tsdiff fit`'s parser into a ForecasterConfig,
except the pretraining recipe's, which parses through `python -m tsdiff.pretrain`'s."""

from pathlib import Path

import pytest

from tsdiff.commands.fit import parse
from tsdiff.forecaster import ForecasterConfig
from tsdiff.pretrain.__main__ import parse as parse_pretrain

FOLDER = Path(__file__).resolve().parents[2] / "configs" / "ts"
PRETRAIN = FOLDER / "pretrain.yaml"
CONFIGS = sorted(p for p in FOLDER.glob("*.yaml") if p != PRETRAIN)


def test_the_pretraining_recipe_parses_with_the_documented_shape():
    cfg, resume = parse_pretrain(["--config", str(PRETRAIN)])
    assert resume is None and cfg.export == "tsdiff/pretrained/base"
    assert (cfg.model.context_length, cfg.model.patch_size) == (512, 16)
    assert max(cfg.corpus.horizons) == 64 and cfg.corpus.real == [".data/pretrain/real"]


def test_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"tiny", "tmy3", "elecdemand", "us_employment"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses(path):
    cfg, data, out, _ = parse(["--config", str(path)])
    assert isinstance(cfg, ForecasterConfig)
    assert cfg.prediction_length >= 1 and cfg.context_length >= 1
    assert data.item_id and data.timestamp and out


def test_documented_settings():
    by = {p.stem: parse(["--config", str(p)])[0] for p in CONFIGS}
    assert (by["tmy3"].prediction_length, by["tmy3"].context_length, by["tmy3"].freq) == (
        24,
        168,
        "h",
    )
    e = by["elecdemand"]
    assert (e.prediction_length, e.context_length, e.freq) == (48, 336, "30min")
    u = by["us_employment"]
    assert (u.prediction_length, u.context_length, u.freq) == (12, 36, "MS")
    assert by["tiny"].max_steps <= 20 and by["tiny"].d_model <= 32
