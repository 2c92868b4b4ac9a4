"""`lm-core generate|score|choose` end to end on a tiny checkpoint (through the dispatcher)."""

import json

import pytest
import torch

from lm_core import ModelConfig, Transformer
from lm_core.checkpoint import save_checkpoint
from lm_core.cli import main
from lm_core.data.sft import answer_prompt, read_jsonl
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.text.llada import export_llada


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    torch.manual_seed(0)
    cfg = dict(vocab_size=259, d_model=32, n_layers=1, n_heads=2, max_seq_len=96)
    m = Transformer(ModelConfig(**cfg))
    save_checkpoint(d / "masked", m, ByteTokenizer())
    save_checkpoint(
        d / "ar", Transformer(ModelConfig(**cfg, causal=True)), ByteTokenizer(), objective="ar"
    )
    export_llada(m, d / "llada", mask_id=258)
    (d / "doc.txt").write_text("hello world, hello world")
    return d


def test_generate_prints_text_and_cost(ckpts, capsys):
    rc = main(["generate", "--ckpt", str(ckpts / "masked"), "--prompt", "hi", "--gen-length", "8",
               "--sampler", "threshold", "--tau", "0.5", "--max-new-tokens", "16"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "nfe=" in out and "tpf=" in out and "tokens_per_s=" in out


def test_generate_with_a_cache_and_a_stop_id(ckpts, capsys):
    rc = main(["generate", "--ckpt", str(ckpts / "masked"), "--prompt", "hi", "--gen-length", "16",
               "--block-length", "8", "--cache", "dual", "--stop-id", "256"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "cache=dual" in out and "nfe=16" in out


def test_stop_id_outside_the_vocabulary_is_one_line_naming_the_flag(ckpts, capsys):
    rc = main(["generate", "--ckpt", str(ckpts / "masked"), "--prompt", "hi", "--stop-id",
               "126348"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "--stop-id: 126348" in err and "vocab_size 259" in err


def test_score_shows_progress_on_stderr_unless_no_progress(ckpts, capsys):
    doc = str(ckpts / "doc.txt")
    args = ["score", "--ckpt", str(ckpts / "masked"), "--text", doc, "--samples", "8",
            "--batch-size", "4"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "score" in err and "2/2" in err and "window 1/1" in err and "<" in err  # time left
    assert main([*args, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "args, word",
    [(["--gen-length", "8", "--block-length", "3"], "block_length"),
     (["--gen-length", "8", "--steps", "3", "--block-length", "4"], "steps"),
     (["--sampler", "beam"], "sampler"), (["--tau", "2", "--sampler", "threshold"], "tau"),
     (["--gen-length", "96"], "max_seq_len")],
)  # fmt: skip
def test_generate_bad_input_is_one_line(ckpts, capsys, args, word):
    rc = main(["generate", "--ckpt", str(ckpts / "masked"), "--prompt", "hi", *args])
    err = capsys.readouterr().err
    assert rc == 2 and word in err and len(err.strip().splitlines()) == 1


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["score", "--ckpt", str(tmp_path / "nope"), "--text", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_score_text_masked_and_ar(ckpts, capsys):
    doc = str(ckpts / "doc.txt")
    assert main(["score", "--ckpt", str(ckpts / "masked"), "--text", doc, "--samples", "8"]) == 0
    assert "ELBO bound" in capsys.readouterr().out
    assert main(["score", "--ckpt", str(ckpts / "ar"), "--text", doc]) == 0
    assert "exact" in capsys.readouterr().out


def test_score_continuation_and_llada_dir(ckpts, capsys):
    args = ["--prompt", "a", "--continuation", "bc", "--samples", "8"]
    assert main(["score", "--ckpt", str(ckpts / "masked"), *args]) == 0
    assert "+-" in capsys.readouterr().out
    # a LLaDA-format directory is detected; without tokenizer.json it is a one-line error
    assert main(["score", "--ckpt", str(ckpts / "llada"), *args]) == 2
    assert "no tokenizer" in capsys.readouterr().err


def test_choose_prints_both_scores_and_pick(ckpts, capsys):
    rc = main(["choose", "--ckpt", str(ckpts / "masked"), "--question", "Q?", "--choices", "yes",
               "no", "--samples", "8"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "likelihood -> " in out and "confidence -> " in out
    assert len(out.strip().splitlines()) == 4


def test_generate_answers_an_sft_file_for_self_distillation(ckpts, tmp_path, capsys):
    """--prompts/--out: every example comes back in its own format with the model's answer,
    the same answer `--prompt` gives for the rendered prompt, and the file is SFT data again."""
    src = tmp_path / "sft.jsonl"
    examples = [
        {"prompt": "ab", "response": "reference"},
        {"messages": [{"role": "user", "content": "cd"}, {"role": "assistant", "content": "x"}]},
        {"prompt": "ef", "response": "other", "id": 7},
    ]
    src.write_text("".join(json.dumps(e) + "\n" for e in examples))
    out = tmp_path / "answers.jsonl"
    opts = ["--gen-length", "8", "--sampler", "threshold", "--tau", "0.5"]
    ckpt = str(ckpts / "masked")
    rc = main(["generate", "--ckpt", ckpt, "--prompts", str(src), "--out", str(out),
               "--batch-size", "2", *opts])  # fmt: skip
    assert rc == 0 and "wrote 3 answers" in capsys.readouterr().out
    got = read_jsonl(out)  # valid SFT data
    assert [g.get("prompt") for g in got] == ["ab", None, "ef"] and got[2]["id"] == 7
    assert got[1]["messages"][0] == examples[1]["messages"][0]
    assert all(g.get("response") not in ("reference", "other") for g in got)
    main(["generate", "--ckpt", ckpt, "--prompt", answer_prompt(examples[0]), *opts])
    alone = capsys.readouterr().out.splitlines()[0]
    assert got[0]["response"] == alone and not (tmp_path / "answers.jsonl.tmp").exists()


@pytest.mark.parametrize(
    "args, word",
    [([], "--prompt"), (["--prompt", "hi", "--prompts", "f.jsonl", "--out", "o"], "not both"),
     (["--prompts", "f.jsonl"], "--out"), (["--prompt", "hi", "--out", "o"], "--out")],
)  # fmt: skip
def test_generate_prompt_sources_are_checked(ckpts, capsys, args, word):
    with pytest.raises(SystemExit) as e:
        main(["generate", "--ckpt", str(ckpts / "masked"), *args])
    assert e.value.code == 2 and word in capsys.readouterr().err
