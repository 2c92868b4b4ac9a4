"""Text generation: batch invariance, EOS handling, variable length, CFG, bad input."""

import pytest
import torch

from lm_core import ModelConfig, Transformer
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.text.generate import generate
from lm_core.text.prompts import attention_inputs

TOK = ByteTokenizer()
IDS = dict(mask_id=TOK.mask_id, eos_id=TOK.eos_id, pad_id=TOK.pad_id)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=259, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                      max_seq_len=64, init_std=0.3)  # fmt: skip
    return Transformer(cfg).double().eval()


@pytest.mark.parametrize(
    "kw",
    [dict(sampler="low_confidence", temperature=1.0),
     dict(sampler="threshold", tau=0.3, temperature=0.7),
     dict(sampler="random", temperature=1.0, cfg_scale=1.5),
     dict(sampler="low_confidence", confidence="margin", max_new_tokens=24)],
)  # fmt: skip
def test_batched_equals_alone(model, kw):
    prompts = ["The cat", "a", "Once upon a time!", "xyz"]
    args = dict(gen_length=16, block_length=8, steps=8, seed=11, **kw)
    batch = generate(model, TOK, prompts, **args)
    outs = [generate(model, TOK, [p], **args) for p in prompts]
    for i, alone in enumerate(outs):
        n = alone.sequences.shape[1]
        assert torch.equal(batch.sequences[i, :n], alone.sequences[0]), i
        assert batch.token_ids[i] == alone.token_ids[0]
    assert len({tuple(o.token_ids[0]) for o in outs}) > 1  # prompts matter
    s = batch.stats
    assert s.nfe > 0 and s.seconds > 0 and s.tpf > 0 and s.tokens_per_second > 0
    assert s.forward_passes == s.nfe * (2 if kw.get("cfg_scale") else 1)


def test_seed_list_gives_distinct_samples(model):
    r = generate(model, TOK, ["hi", "hi"], gen_length=8, block_length=8, steps=8,
                 temperature=1.0, seed=[1, 2])  # fmt: skip
    assert r.token_ids[0] != r.token_ids[1]


def test_pad_positions_never_attended():
    valid = torch.tensor([[False, False, True, True], [True, True, True, True]])
    ai = attention_inputs(valid)
    assert not ai["attn_mask"][0, 2:, :2].any() and ai["attn_mask"][0, 0, 0]
    assert ai["positions"][0].tolist()[2:] == [0, 1] and ai["positions"][1].tolist() == [0, 1, 2, 3]
    assert attention_inputs(valid[1:])["attn_mask"] is None


class EosAt(torch.nn.Module):
    """Fake denoiser: predicts 'a' before canvas column ``col`` and EOS (or ``end``) from it on."""

    def __init__(self, col, max_seq_len=64, end=TOK.eos_id):
        super().__init__()
        self.col, self.end = col, end
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.cfg = ModelConfig(
            vocab_size=259, d_model=8, n_heads=2, n_layers=1, max_seq_len=max_seq_len
        )

    def forward(self, x, attn_mask=None, positions=None):
        logits = torch.zeros(*x.shape, 259)
        cols = torch.arange(x.shape[1])
        logits[:, cols < self.col, ord("a")] = 5.0
        logits[:, cols >= self.col, self.end] = 5.0
        return logits


def test_eos_block_stops_and_fills_rest():
    m = EosAt(col=2 + 5)  # prompt "hi" (2) + 5 letters, then EOS
    r = generate(m, TOK, ["hi"], gen_length=32, block_length=8, steps=32)
    assert r.texts == ["aaaaa"]
    assert r.stats.per_block_nfe == [8]  # stopped after the first block
    assert (r.sequences[0, 5:] == TOK.eos_id).all() and r.sequences.shape[1] == 32


def test_stop_id_ends_a_row_as_eos_does():
    m = EosAt(col=2 + 5, end=ord("!"))  # an instruct model's end-of-turn token, not EOS
    r = generate(m, TOK, ["hi"], gen_length=32, block_length=8, steps=32, stop_ids=[ord("!")])
    assert r.texts == ["aaaaa"] and r.stats.per_block_nfe == [8]
    r = generate(m, TOK, ["hi"], gen_length=32, block_length=8, steps=32)
    assert r.texts == ["aaaaa" + "!" * 27] and len(r.stats.per_block_nfe) == 4


def test_stop_string_ends_a_row_and_cuts_its_text():
    m = EosAt(col=2 + 5, end=ord("!"))
    r = generate(m, TOK, ["hi"], gen_length=32, block_length=8, steps=32, stop=["a!"])
    assert r.texts == ["aaaa"] and r.stats.per_block_nfe == [8]


def test_stop_id_outside_the_vocabulary_names_the_vocabulary_size(model):
    with pytest.raises(ValueError, match=r"stop_ids: 126348 is outside .*vocab_size 259"):
        generate(model, TOK, ["hi"], gen_length=8, block_length=8, stop_ids=[126348])


def test_variable_length_appends_blocks_until_eos_or_cap():
    m = EosAt(col=2 + 20)
    r = generate(m, TOK, ["hi"], gen_length=8, block_length=8, steps=8, max_new_tokens=40)
    assert r.texts == ["a" * 20] and r.sequences.shape[1] == 24
    r = generate(
        EosAt(col=60), TOK, ["hi"], gen_length=8, block_length=8, steps=8, max_new_tokens=16
    )
    assert r.texts == ["a" * 16]


def test_cfg_uses_masked_prompt_for_unconditional_pass():
    seen = []

    class Spy(EosAt):
        def forward(self, x, attn_mask=None, positions=None):
            seen.append(x.clone())
            return super().forward(x)

    generate(Spy(col=99), TOK, ["hey"], gen_length=4, block_length=4, steps=1, cfg_scale=2.0)
    x = seen[0]
    assert x.shape[0] == 2 and x[0, :3].tolist() == list(b"hey")
    assert (x[1, :3] == TOK.mask_id).all()


@pytest.mark.parametrize(
    "kw, field",
    [(dict(gen_length=10, block_length=4), "block_length"),
     (dict(gen_length=16, block_length=4, steps=6), "steps"),
     (dict(gen_length=64, block_length=8), "max_seq_len"),
     (dict(tau=0.0), "tau"), (dict(tau=1.5, sampler="threshold"), "tau"),
     (dict(sampler="beam"), "sampler"), (dict(cfg_scale=-1.0), "cfg_scale"),
     (dict(max_new_tokens=12), "max_new_tokens")],
)  # fmt: skip
def test_bad_input_names_the_field(model, kw, field):
    args = dict(gen_length=8, block_length=8, steps=8) | kw
    with pytest.raises(ValueError, match=field):
        generate(model, TOK, ["hello"], **args)


def test_empty_prompt_is_refused(model):
    with pytest.raises(ValueError, match=r"prompts\[1\]: empty"):
        generate(model, TOK, ["ok", ""], gen_length=8, block_length=8)
    with pytest.raises(ValueError, match="prompts"):
        generate(model, TOK, [], gen_length=8, block_length=8)
    r = generate(model, None, [[1, 2, 3]], gen_length=8, block_length=8, **IDS)
    assert r.texts is None and len(r.token_ids) == 1
