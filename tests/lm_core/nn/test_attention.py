"""Attention masks: block-causal (BD3-LM) visibility and the dual-stream training mask."""

import torch

from lm_core.config import ModelConfig
from lm_core.nn.attention import block_causal_mask, dual_stream_mask
from lm_core.nn.transformer import Transformer


def test_block_causal_mask_sees_its_own_and_earlier_blocks():
    blocks = torch.tensor([[0, 0, 1, 1, 2]])
    m = block_causal_mask(blocks, blocks)[0].int().tolist()
    assert m == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0],
                 [1, 1, 1, 1, 1]]  # fmt: skip


def test_dual_stream_mask_noisy_block_sees_itself_and_earlier_clean_blocks():
    blocks = torch.tensor([[0, 0, 1, 1]])
    m = dual_stream_mask(blocks)[0].int()
    # rows 0-3: noisy x_t; rows 4-7: clean x_0; columns likewise
    assert m[2].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]  # noisy block 1: noisy block 1, clean block 0
    assert m[0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]  # noisy block 0: only itself
    assert m[6].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # clean block 1: clean blocks 0 and 1
    assert m[4].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]


def test_dual_stream_mask_keeps_documents_and_pads_apart():
    blocks = torch.tensor([[0, 0, 0, 0]])
    docs = torch.tensor([[0, 0, 1, 1]])
    m = dual_stream_mask(blocks, docs)[0]
    assert m[0, 1] and not m[0, 2]  # noisy: its own document's block only
    assert m[4, 5] and not m[4, 6] and not m[6, 5]  # clean: the same, within documents
    valid = torch.tensor([[True, True, True, False]])
    m = dual_stream_mask(blocks, valid=valid)[0]
    assert not m[0, 3] and not m[0, 7] and m[3, 3]  # a pad key is hidden; a pad query sees itself


def test_block_causal_model_ignores_later_blocks_by_default():
    torch.manual_seed(0)
    cfg = dict(vocab_size=30, d_model=32, n_layers=2, n_heads=4, max_seq_len=32, init_std=0.3)
    bc, bi = Transformer(ModelConfig(**cfg, block_causal=4)), Transformer(ModelConfig(**cfg))
    bi.load_state_dict(bc.state_dict())
    x = torch.randint(0, 30, (2, 12))
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % 30  # the third block changes
    with torch.no_grad():
        torch.testing.assert_close(bc(y)[:, :8], bc(x)[:, :8])
        assert not torch.allclose(bi(y)[:, :8], bi(x)[:, :8], atol=1e-4)  # bidirectional: does
