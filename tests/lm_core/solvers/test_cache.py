"""Block-wise denoiser calls with a KV cache: exact for a block-causal model, a refreshed
approximation for a bidirectional one, and the same generations through every sampler."""

import pytest
import torch

from lm_core.config import ModelConfig
from lm_core.nn.transformer import Transformer
from lm_core.solvers.cache import BlockForward, canvas_blocks
from lm_core.text.generate import dmax_generate, generate

MASK, EOS, PAD = 17, 18, 19
PROMPTS = [[3, 4, 5, 6, 7, 8, 9, 10], [8, 9, 10, 11]]  # the second row is left-padded


def model(block_causal: int = 0, seed: int = 0) -> Transformer:
    """A random 2-layer model whose outputs vary with its inputs (large init)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=20, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                      max_seq_len=64, block_causal=block_causal, init_std=0.3)  # fmt: skip
    return Transformer(cfg).eval()


def canvas(gen: int = 16):
    """Left-padded prompts then ``gen`` masks: ids [2, 8 + gen], valid [2, 8 + gen]."""
    x = torch.full((2, 8 + gen), MASK)
    valid = torch.ones_like(x, dtype=torch.bool)
    x[0, :8] = torch.tensor(PROMPTS[0])
    x[1, :4], valid[1, :4] = PAD, False
    x[1, 4:8] = torch.tensor(PROMPTS[1])
    return x, valid


def test_canvas_blocks_put_the_prompt_in_block_zero():
    assert canvas_blocks(7, 3, 2, "cpu").tolist() == [0, 0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_block_causal_cache_equals_uncached_logits_at_every_step(mode):
    m = model(block_causal=4)
    x, valid = canvas()
    g = torch.Generator().manual_seed(0)
    ref = BlockForward(m, "none", valid=valid, prompt_len=8, block_length=8)
    fast = BlockForward(m, mode, valid=valid, prompt_len=8, block_length=8)
    with torch.no_grad():
        for lo in (8, 16):
            for step in range(3):  # fill a few random cells of the block between steps
                a = ref(x, lo, lo + 8, step == 0)
                b = fast(x, lo, lo + 8, step == 0)
                assert a.shape == (2, 8, 20)
                torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
                cells = torch.randint(lo, lo + 8, (2,), generator=g)
                x[torch.arange(2), cells] = torch.randint(0, 17, (2,), generator=g)
    assert fast.passes < 2 * ref.passes  # the finished block ran once, not once per step


def test_block_causal_uncached_logits_do_not_see_later_blocks():
    m = model(block_causal=4)
    x, valid = canvas()
    f = BlockForward(m, "none", valid=valid, prompt_len=8, block_length=8)
    with torch.no_grad():
        before = f(x, 8, 16, True)
        x[:, 16:] = 5  # the later block changes
        torch.testing.assert_close(f(x, 8, 16, True), before)
        x[:, 10] = 6  # the active block changes
        assert not torch.allclose(f(x, 8, 16, True), before)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_bidirectional_cache_is_exact_until_the_block_changes_then_approximate(mode):
    m = model()
    x, valid = canvas()
    ref = BlockForward(m, "none", valid=valid, prompt_len=8, block_length=8)
    fast = BlockForward(m, mode, valid=valid, prompt_len=8, block_length=8)
    with torch.no_grad():
        torch.testing.assert_close(fast(x, 8, 16, True), ref(x, 8, 16, True))  # refresh
        torch.testing.assert_close(fast(x, 8, 16, False), ref(x, 8, 16, False), rtol=1e-5,
                                   atol=1e-5)  # fmt: skip
        x[:, 8:12] = 4  # the block's new tokens: cached columns are now stale
        assert not torch.allclose(fast(x, 8, 16, False), ref(x, 8, 16, False), atol=1e-4)


@pytest.mark.parametrize("sampler", ["low_confidence", "threshold", "dmax"])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_block_causal_generation_with_a_cache_equals_generation_without(sampler, mode):
    m = model(block_causal=4, seed=1)
    kw = dict(gen_length=16, block_length=8, steps=16, sampler=sampler, tau=0.4,
              temperature=0.0 if sampler == "dmax" else 1.0, mask_id=MASK, eos_id=EOS,
              pad_id=PAD, seed=[3, 4])  # fmt: skip
    ref = generate(m, None, PROMPTS, cache="none", **kw)
    out = generate(m, None, PROMPTS, cache=mode, **kw)
    assert torch.equal(out.sequences, ref.sequences)
    assert out.stats.nfe == ref.stats.nfe
    assert len(set(ref.sequences.flatten().tolist())) > 3  # the test sees varied tokens


def test_bidirectional_dual_cache_generation_keeps_the_step_count():
    m = model(seed=2)
    kw = dict(gen_length=16, block_length=8, steps=16, mask_id=MASK, eos_id=EOS, pad_id=PAD)
    ref = generate(m, None, PROMPTS, **kw)
    out = generate(m, None, PROMPTS, cache="dual", **kw)
    assert out.stats.nfe == ref.stats.nfe == 16
    assert out.sequences.shape == ref.sequences.shape
    soft = dmax_generate(m, None, PROMPTS, gen_length=16, block_length=8, cache="dual",
                         mask_id=MASK, eos_id=EOS, pad_id=PAD)  # fmt: skip
    assert soft.sequences.shape == (2, 16)


def test_cache_bad_settings_are_one_clear_error():
    x, valid = canvas()
    with pytest.raises(ValueError, match="cache: expected one of"):
        BlockForward(model(), "full", valid=valid, prompt_len=8, block_length=8)
    with pytest.raises(ValueError, match="multiple of the model's block_causal=4"):
        BlockForward(model(block_causal=4), "dual", valid=valid, prompt_len=8, block_length=6)
    with pytest.raises(ValueError, match="cfg_scale"):
        generate(model(), None, PROMPTS, gen_length=8, block_length=8, cache="dual",
                 cfg_scale=1.0, mask_id=MASK, eos_id=EOS, pad_id=PAD)  # fmt: skip


def test_block_causal_cache_equals_uncached_with_variable_length_and_stop_ids():
    m = model(block_causal=4, seed=3)
    kw = dict(gen_length=8, block_length=8, steps=8, max_new_tokens=24, temperature=1.0,
              mask_id=MASK, eos_id=EOS, pad_id=PAD, seed=[5, 6], stop_ids=[16])  # fmt: skip
    ref = generate(m, None, PROMPTS, cache="none", **kw)
    out = generate(m, None, PROMPTS, cache="dual", **kw)
    assert torch.equal(out.sequences, ref.sequences) and out.token_ids == ref.token_ids
