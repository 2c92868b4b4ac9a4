"""The objective registry: one loss function per ``objective.kind``, looked up by the training
module instead of branching on kinds."""

from __future__ import annotations

import typing

import pytest
import torch

from lm_core.config import ModelConfig, ObjectiveConfig, OptimConfig
from lm_core.objectives import LOSSES, get_loss
from lm_core.objectives.masked import masked_diffusion_loss
from lm_core.train.module import DiffusionLM

SHAPE = ModelConfig(vocab_size=11, d_model=16, n_layers=1, n_heads=2, max_seq_len=16)


def test_every_objective_kind_has_a_loss_and_unknown_kinds_are_named():
    kinds = typing.get_args(typing.get_type_hints(ObjectiveConfig)["kind"])
    assert set(LOSSES) == set(kinds)
    with pytest.raises(ValueError, match="objective.kind: expected one of"):
        get_loss("mse")


def test_the_masked_entry_is_the_elbo_on_a_padded_batch_with_valid_as_maskable():
    torch.manual_seed(0)
    module = DiffusionLM(SHAPE, ObjectiveConfig(kind="masked"), OptimConfig(), max_steps=1,
                         mask_id=10)  # fmt: skip
    ids = torch.randint(0, 10, (3, 8))
    valid = torch.ones(3, 8, dtype=torch.bool)
    valid[0, 6:] = False
    batch = {"input_ids": ids, "valid": valid}
    got, _ = module.compute_loss(batch, torch.Generator().manual_seed(5))
    want, _ = masked_diffusion_loss(
        module.net, ids, mask_id=10, maskable=valid, attn_mask=valid[:, None, None, :],
        eps=1e-3, generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    assert module.loss_fn is LOSSES["masked"]
    assert torch.equal(got, want)


def test_the_sft_entry_needs_sft_batches():
    module = DiffusionLM(SHAPE, ObjectiveConfig(kind="sft"), OptimConfig(), max_steps=1,
                         mask_id=10)  # fmt: skip
    with pytest.raises(ValueError, match="objective.kind=sft needs SFT batches"):
        module.compute_loss({"input_ids": torch.zeros(1, 4, dtype=torch.long)}, None)
