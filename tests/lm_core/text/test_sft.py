"""SFT formatting, batching, loss wiring, and a learning test on a synthetic task."""

import json

import pytest
import torch

from lm_core import ModelConfig, Transformer
from lm_core.data.sft import (
    ChatTemplate,
    SFTDataset,
    format_example,
    read_jsonl,
    render_prompt,
    sft_batch,
)
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.objectives.masked import sft_loss
from lm_core.text.generate import generate

TOK = ByteTokenizer()


def test_format_prompt_response_and_chat():
    ids, pl = format_example({"prompt": "ab", "response": "ba"}, TOK)
    assert TOK.decode(ids[:pl]) == "<|user|>\nab\n<|assistant|>\n"
    assert ids[pl:] == [*b"ba", TOK.eos_id]
    chat = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "u1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "u2"},
            {"role": "assistant", "content": "a2"},
        ]
    }
    ids, pl = format_example(chat, TOK)
    assert TOK.decode(ids[:pl]) == render_prompt(chat["messages"][:-1])
    assert TOK.decode(ids[:pl]).endswith("<|user|>\nu2\n<|assistant|>\n")
    assert "a1" in TOK.decode(ids[:pl]) and ids[pl:] == [*b"a2", TOK.eos_id]


@pytest.mark.parametrize(
    "bad, word",
    [({"prompt": "x"}, "response"), ({"messages": []}, "messages"),
     ({"messages": [{"role": "user", "content": "x"}]}, "last message"),
     ({"messages": [{"role": "bot", "content": "x"}]}, "role")],
)  # fmt: skip
def test_bad_examples_are_named(bad, word):
    with pytest.raises(ValueError, match=word):
        format_example(bad, TOK)


def test_read_jsonl_names_line(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"d.jsonl:2"):
        read_jsonl(f)
    f.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n\n")
    assert len(SFTDataset(f, TOK)) == 1


def test_batch_pads_with_maskable_eos():
    ex = [format_example({"prompt": "a", "response": "b"}, TOK),
          format_example({"prompt": "aaaa", "response": "bbbbbb"}, TOK)]  # fmt: skip
    b = sft_batch(ex, eos_id=TOK.eos_id)
    T = len(ex[1][0])
    assert b["input_ids"].shape == (2, T)
    pl0 = ex[0][1]
    assert (b["input_ids"][0, len(ex[0][0]) :] == TOK.eos_id).all()
    assert b["maskable"][0].tolist() == [i >= pl0 for i in range(T)]
    assert b["maskable"].sum(-1).tolist() == [T - ex[0][1], T - ex[1][1]]


def test_sft_loss_never_masks_prompt():
    seen = {}

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(259))

        def forward(self, x, **kw):
            seen["x"] = x.clone()
            return self.w.expand(*x.shape, 259)

    ex = [format_example({"prompt": "hello", "response": "abc"}, TOK)] * 4
    b = sft_batch(ex, eos_id=TOK.eos_id)
    loss, _ = sft_loss(Spy(), b, TOK.mask_id, eps=0.999)  # p ~ 1: every maskable cell masked
    pl = ex[0][1]
    assert (seen["x"][:, :pl] == b["input_ids"][:, :pl]).all()
    assert (seen["x"][:, pl:] == TOK.mask_id).all()
    # uniform logits: the answer-normalised loss is log(259) / p with p in [0.999, 1]
    log_v = torch.log(torch.tensor(259.0)).item()
    assert log_v - 1e-5 <= loss.item() <= log_v / 0.999 + 1e-5


@pytest.mark.learning
def test_sft_learns_to_reverse_strings():
    """Synthetic checkable task: reverse a 3-letter string (prompt "abc=", answer "cba")."""
    torch.manual_seed(0)
    tpl = ChatTemplate(system="", user="", assistant="=", end_of_turn="")
    words = ["abc", "bca", "cab", "dab", "acd", "bdc"]
    data = [format_example({"prompt": w, "response": w[::-1]}, TOK, tpl) for w in words] * 4
    batch = sft_batch(data, eos_id=TOK.eos_id)
    cfg = ModelConfig(vocab_size=259, d_model=64, n_layers=2, n_heads=4, max_seq_len=32)
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    ces = []
    for _ in range(300):
        loss, stats = sft_loss(model, batch, TOK.mask_id, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ces.append(stats["ce_masked"].item())
    first, last = sum(ces[:20]) / 20, sum(ces[-20:]) / 20
    assert first > 2.0 and last < 0.1, (first, last)
    model.eval()
    # SFT trained the 4 cells after the prompt (3 letters + EOS); generating more would ask the
    # model about cells it never saw, which the CPU's float summation order then decides
    rows = batch["input_ids"][: len(words)]
    answer = batch["maskable"][: len(words)]
    n_answer = int(answer[0].sum())
    assert n_answer == 4 and (answer.sum(-1) == n_answer).all()
    prompts = [render_prompt([{"role": "user", "content": w}], tpl) for w in words]
    out = generate(model, TOK, prompts, gen_length=n_answer, block_length=n_answer, steps=n_answer)
    assert out.texts == [w[::-1] for w in words]
    # with margin: with the whole answer masked, every answer cell gives its right token p > 0.9
    with torch.no_grad():
        probs = model(rows.masked_fill(answer, TOK.mask_id)).softmax(-1)
    p_right = probs.gather(-1, rows[..., None])[..., 0][answer]
    assert p_right.min() > 0.9, p_right
