"""tsdiff.adapters: LoRA adapters (peft) on the denoiser's Transformer projections."""

import importlib.util
import sys

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tests.tsdiff.tiny import sine_frame
from tsdiff.adapters import (
    LORA_TARGETS,
    MISSING_PEFT,
    adapter_state_dict,
    add_lora,
    has_lora,
    load_adapter,
    lora_settings,
    merge_lora,
    read_adapter,
    save_adapter,
    trainable_parameters,
)
from tsdiff.data.frames import Columns, frame_to_series
from tsdiff.data.windows import collate, make_window
from tsdiff.model import NumericDenoiser, TSModelConfig
from tsdiff.train import TSDiffModule, quiet_lightning, training_loss

needs_peft = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft missing")

CFG = dict(
    context_length=32, prediction_length=8, patch_size=8, n_bins=32, d_model=32, n_layers=2,
    n_heads=2, n_time_features=4,
)  # fmt: skip


def base_model(**over) -> NumericDenoiser:
    """A stand-in for a pretrained base: seeded weights and a non-zero head (a fresh model's
    zero head would make every output, and every gradient into the backbone, zero)."""
    torch.manual_seed(0)
    m = NumericDenoiser(TSModelConfig(**{**CFG, **over}))
    nn.init.normal_(m.head.weight, std=0.5)
    return m


@pytest.fixture(scope="module")
def batch():
    ser = frame_to_series(sine_frame(300)[["item_id", "timestamp", "y"]], Columns(["y"]), "h")
    return collate([make_window(ser[0], e, 32, 8, "h") for e in (100, 180, 260, 300)])


def logits(m: NumericDenoiser, batch: dict) -> torch.Tensor:
    """Eval-mode logits [B, H, n_bins] of the horizon with a fixed mix of bin ids and MASK."""
    m.eval()
    with torch.no_grad():
        hz = m.horizon(batch)
        tokens = torch.randint(0, 33, (hz.windows, 8), generator=torch.Generator().manual_seed(1))
        return m.horizon_logits(tokens, hz.static, hz.kvs, hz.positions)


def base_name(name: str) -> str:
    return name.replace(".base_layer.", ".")


def train(m: NumericDenoiser, batch: dict, steps: int = 5) -> None:
    """A few AdamW steps with the optimiser of tsdiff.train.TSDiffModule."""
    module = TSDiffModule(m.cfg.to_dict(), lr=1e-2, warmup_steps=0, max_steps=100)
    module.model = m
    opt = module.configure_optimizers()["optimizer"]
    m.train()
    for k in range(steps):
        torch.manual_seed(k)
        opt.zero_grad()
        training_loss(m, batch)[0].backward()
        opt.step()


@needs_peft
def test_add_lora_keeps_the_outputs_and_trains_only_the_adapter(batch):
    """Right after add_lora the outputs are the base's, bit for bit (B starts at zero); only the
    LoRA factors (and the train_also prefixes) require grad, on every projection of every block
    and nowhere outside the backbone's blocks; the model object and its cfg are kept."""
    base = base_model()
    before = logits(base, batch)
    m = add_lora(base, train_also=("head",))
    assert m is base and m.cfg.d_model == 32 and has_lora(m)
    assert torch.equal(logits(m, batch), before)
    trainable = {n for n, _ in trainable_parameters(m)}
    lora = {n for n in trainable if ".lora_" in n}
    assert trainable == lora | {"head.weight", "head.bias"}
    assert len(lora) == 2 * 2 * len(LORA_TARGETS)  # A and B, 2 layers, 7 projections
    wrapped = [n for n, mod in m.named_modules() if hasattr(mod, "lora_A")]
    assert all(n.startswith("backbone.blocks.") for n in wrapped) and len(wrapped) == 14
    assert isinstance(m.patch_proj[0], nn.Linear) and isinstance(m.head, nn.Linear)
    assert lora_settings(m) == {
        "rank": 8, "alpha": 16, "dropout": 0.0, "targets": list(LORA_TARGETS),
        "train_also": ["head"],
    }  # fmt: skip


@needs_peft
def test_targets_choose_the_projections_and_flow_time_embedding_stays_plain():
    """targets=("q_proj", "v_proj") wraps just those two per block; in flow mode the backbone's
    time embedding (Linear layers outside the blocks) is not wrapped either."""
    m = add_lora(base_model(mode="flow"), rank=4, targets=("q_proj", "v_proj"))
    wrapped = {n for n, mod in m.named_modules() if hasattr(mod, "lora_A")}
    assert wrapped == {
        f"backbone.blocks.{i}.attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")
    }
    assert not any("time_emb" in n for n, _ in trainable_parameters(m))


@needs_peft
def test_the_adapter_is_rank_times_in_plus_out_per_projection_and_small():
    """The adapter holds rank * (in + out) numbers per wrapped projection; for a d_model 192,
    4-layer denoiser at rank 8 that is under a tenth of the model."""
    m = base_model()
    linears = {n: mod for n, mod in m.named_modules() if n.split(".")[-1] in LORA_TARGETS}
    expected = sum(8 * (mod.in_features + mod.out_features) for mod in linears.values())
    add_lora(m)
    assert sum(t.numel() for t in adapter_state_dict(m).values()) == expected
    big = add_lora(base_model(d_model=192, n_layers=4, n_heads=4))
    n_adapter = sum(t.numel() for t in adapter_state_dict(big).values())
    n_model = sum(p.numel() for n, p in big.named_parameters() if ".lora_" not in n)
    assert n_adapter < 0.1 * n_model


@needs_peft
def test_training_moves_the_adapter_and_leaves_the_base_bit_identical(batch):
    """Optimiser steps (TSDiffModule's AdamW: frozen weights are not in it) change the outputs
    and the adapter, while every frozen base weight stays exactly what it was."""
    m = base_model()
    base_state = {k: v.clone() for k, v in m.state_dict().items()}
    before = logits(m, batch)
    add_lora(m)
    module = TSDiffModule(m.cfg.to_dict())
    module.model = m
    groups = module.configure_optimizers()["optimizer"].param_groups
    in_opt = {id(p) for g in groups for p in g["params"]}
    assert in_opt == {id(p) for _, p in trainable_parameters(m)}
    train(m, batch)
    assert not torch.allclose(logits(m, batch), before, atol=1e-4)
    for name, p in m.state_dict().items():
        if ".lora_" not in name:
            assert torch.equal(p, base_state[base_name(name)]), name


@needs_peft
def test_trained_through_lightning_and_the_base_is_untouched(batch):
    """The Trainer path every fit takes (TSDiffModule, AdamW, clipping) trains the adapter
    alone."""
    torch.set_num_threads(1)
    module = TSDiffModule(base_model().cfg.to_dict(), lr=1e-2, warmup_steps=0, max_steps=3)
    module.model = base_model()
    base_state = {k: v.clone() for k, v in module.model.state_dict().items()}
    add_lora(module.model, train_also=("head",))
    trainer = L.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", gradient_clip_val=1.0,
    )  # fmt: skip
    with quiet_lightning():
        trainer.fit(module, DataLoader([batch] * 3, batch_size=None))
    state = module.model.state_dict()
    changed = {base_name(n) for n, v in state.items() if ".lora_" not in n and
               not torch.equal(v, base_state[base_name(n)])}  # fmt: skip
    assert changed == {"head.weight", "head.bias"}
    assert any(v.abs().sum() > 0 for n, v in state.items() if ".lora_B." in n)


@needs_peft
def test_a_saved_adapter_on_a_fresh_base_gives_the_same_outputs(batch, tmp_path):
    """save_adapter writes the adapter alone (safetensors, settings in its metadata); a fresh
    base + add_lora(**settings) + load_adapter forecasts as the trained model did."""
    m = add_lora(base_model(), rank=4, alpha=8, train_also=("head",))
    train(m, batch)
    path = save_adapter(m, tmp_path / "adapter.safetensors")
    state, settings = read_adapter(path)
    assert set(state) == set(adapter_state_dict(m)) and settings == lora_settings(m)
    fresh = load_adapter(add_lora(base_model(), **settings), state)
    assert torch.equal(logits(fresh, batch), logits(m, batch))


@needs_peft
def test_load_adapter_names_what_does_not_fit(batch):
    """Missing or unexpected tensors, or another rank, are one ValueError naming them."""
    state = adapter_state_dict(add_lora(base_model()))
    key = "backbone.blocks.0.attn.q_proj.lora_A.default.weight"
    with pytest.raises(ValueError, match=r"missing backbone\.blocks\.0\.attn\.q_proj\.lora_A"):
        load_adapter(add_lora(base_model()), {k: v for k, v in state.items() if k != key})
    with pytest.raises(ValueError, match="unexpected head.weight"):
        load_adapter(add_lora(base_model()), {**state, "head.weight": torch.zeros(32, 32)})
    with pytest.raises(ValueError, match=r"q_proj\.lora_A\.default\.weight has shape \(8, 32\)"):
        load_adapter(add_lora(base_model(), rank=4), state)
    with pytest.raises(ValueError, match="has no LoRA adapters"):
        load_adapter(base_model(), state)


@needs_peft
def test_merge_lora_folds_the_adapter_into_plain_linears(batch):
    """merge_lora gives the base's layout back (state_dict names, plain nn.Linear, all weights
    trainable) with the adapted outputs."""
    base_keys = list(base_model().state_dict())
    m = add_lora(base_model(), train_also=("head",))
    train(m, batch)
    adapted = logits(m, batch)
    assert merge_lora(m) is m and not has_lora(m)
    assert list(m.state_dict()) == base_keys
    assert type(m.backbone.blocks[0].attn.q_proj) is nn.Linear
    assert all(p.requires_grad for p in m.parameters())
    torch.testing.assert_close(logits(m, batch), adapted, atol=1e-5, rtol=1e-5)


def test_missing_peft_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    with pytest.raises(ImportError) as e:
        add_lora(base_model())
    assert str(e.value) == MISSING_PEFT and "\n" not in MISSING_PEFT


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rank=0), "rank must be a positive integer, got 0"),
        (dict(alpha=-1), "alpha must be a positive number"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (dict(targets=("q_proj", "w_in")), "targets must be distinct names among"),
        (dict(train_also=("heads",)), "train_also 'heads' names no parameter"),
    ],
)
def test_bad_settings_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        add_lora(base_model(), **kwargs)


@needs_peft
def test_adapting_twice_and_reading_a_foreign_file_are_refused(tmp_path):
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        add_lora(add_lora(base_model()))
    bad = tmp_path / "adapter.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a tsdiff LoRA adapter file"):
        read_adapter(bad)
    with pytest.raises(FileNotFoundError, match="no such adapter file"):
        read_adapter(tmp_path / "none.safetensors")


@needs_peft
@pytest.mark.learning
def test_a_lora_fine_tune_lowers_the_loss_on_its_data(batch):
    """Forty LoRA steps on one batch lower its loss (same noise draws before and after)."""
    torch.set_num_threads(1)
    m = add_lora(base_model())

    def loss():
        m.eval()
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            return sum(training_loss(m, batch, generator=g)[0].item() for _ in range(8))

    before = loss()
    train(m, batch, steps=40)
    assert loss() < 0.8 * before
