"""Prompt helpers shared by generate and dmax_generate (lm_core.text.prompts)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lm_core.text.prompts import cut_at_eos, special_ids


def test_cut_at_eos_keeps_each_row_up_to_its_first_eos():
    seq = torch.tensor([[5, 6, 0, 7, 0], [1, 2, 3, 4, 5]])
    assert cut_at_eos(seq, eos_id=0) == [[5, 6], [1, 2, 3, 4, 5]]


def test_special_ids_prefer_given_ids_and_name_the_missing_one():
    tok = SimpleNamespace(mask_id=9, eos_id=8, pad_id=7)
    assert special_ids(tok) == (9, 8, 7)
    assert special_ids(tok, mask_id=3) == (3, 8, 7)
    with pytest.raises(ValueError, match="pad_id: give it"):
        special_ids(None, mask_id=1, eos_id=2)
