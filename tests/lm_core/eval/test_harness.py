"""`lm-core eval` and the lm-eval model type ``lm_core``, offline: tasks defined in local YAML
files over local JSON data, a tiny checkpoint built here (random weights, byte tokenizer)."""

import json
import math
import re
from types import SimpleNamespace

import pytest
import torch

from lm_core import ModelConfig, Transformer
from lm_core.checkpoint import save_checkpoint
from lm_core.cli import main
from lm_core.data.tokenizers import ByteTokenizer
from lm_core.eval.requests import UnservableRequest
from lm_core.text.generate import generate

harness = pytest.importorskip("lm_core.eval.harness")

QUESTIONS = [
    {"question": "ab", "choices": ["cd", "xyz"], "answer": 0},
    {"question": "hello", "choices": ["world", "there", "q"], "answer": 1},
]
CHOICE_YAML = """task: tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
"""
GEN_YAML = """task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{choices[0]}}}}"
generation_kwargs:
  until: ["e"]
  max_gen_toks: 8
metric_list:
  - metric: exact_match
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    cfg = dict(vocab_size=259, d_model=32, n_layers=1, n_heads=2, max_seq_len=48)
    save_checkpoint(d / "masked", Transformer(ModelConfig(**cfg)), ByteTokenizer())
    save_checkpoint(
        d / "ar", Transformer(ModelConfig(**cfg, causal=True)), ByteTokenizer(), objective="ar"
    )
    tasks = d / "tasks"
    tasks.mkdir()
    data = d / "questions.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    (tasks / "tiny_choice.yaml").write_text(CHOICE_YAML.format(data=data))
    (tasks / "tiny_gen.yaml").write_text(GEN_YAML.format(data=data))
    return d


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _score_cli(capsys, ckpt, prompt, cont, samples, seed) -> float:
    """What `lm-core score --prompt --continuation` prints, as a number."""
    args = ["score", "--ckpt", str(ckpt), "--prompt", prompt, "--continuation", cont,
            "--samples", str(samples), "--seed", str(seed)]  # fmt: skip
    assert main(args) == 0
    return float(re.search(r">= (\S+) \+-", capsys.readouterr().out).group(1))


def test_harness_loglikelihood_equals_lm_core_score(setup, capsys):
    """Through the whole harness (requests built from the YAML task, the registered model type
    answering them), each choice's loglikelihood is what `lm-core score` prints for the same
    context, continuation, samples and seed; the accuracy is computed from those numbers."""
    scorer = harness.load_scorer(str(setup / "masked"), mc_samples=8, batch_size=4, seed=3)
    res = harness.run_eval(
        scorer, ["tiny_choice"], include_path=str(setup / "tasks"), log_samples=True,
        bootstrap_iters=0,
    )  # fmt: skip
    logged = sorted(res["samples"]["tiny_choice"], key=lambda s: s["doc_id"])
    assert [s["doc"] for s in logged] == QUESTIONS
    correct = []
    for s, q in zip(logged, QUESTIONS, strict=True):
        assert [a[1] for a in s["arguments"]] == [" " + c for c in q["choices"]]
        lls = []
        for (ctx, cont), ((ll, greedy),) in zip(s["arguments"], s["resps"], strict=True):
            assert ctx == q["question"] and isinstance(greedy, bool)
            assert round(ll, 4) == _score_cli(capsys, setup / "masked", ctx, cont, 8, 3)
            lls.append(ll)
        correct.append(float(max(range(len(lls)), key=lls.__getitem__) == q["answer"]))
    acc = res["results"]["tiny_choice"]["acc,none"]
    assert acc == pytest.approx(sum(correct) / len(correct))


def test_rolling_loglikelihood_is_score_text(setup, tmp_path, capsys):
    """loglikelihood_rolling is minus the NLL `lm-core score --text` turns into its bound."""
    text = "hello world, hello there"
    scorer = harness.load_scorer(str(setup / "masked"), mc_samples=8, batch_size=4, seed=1)
    ll = scorer.loglikelihood_rolling(text)
    (tmp_path / "doc.txt").write_text(text)
    assert main(["score", "--ckpt", str(setup / "masked"), "--text", str(tmp_path / "doc.txt"),
                 "--samples", "8", "--batch-size", "4", "--seed", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    ppl, n = re.search(r"<= (\S+) .* over (\d+) tokens", out).groups()
    assert f"{math.exp(-ll / int(n)):.3f}" == ppl and int(n) == len(text.encode())


def test_generate_until_cuts_the_sampler_text_at_the_first_stop(setup):
    """generate_until returns the sampler's text (same prompt, seed, length) up to the first
    stop string; the harness hands each request's `until` to it."""
    scorer = harness.load_scorer(str(setup / "masked"), seed=2, block_length=4)
    full = generate(scorer.model, scorer.tok, ["ab"], gen_length=8, block_length=4, seed=2)
    text = full.texts[0]
    assert scorer.generate_until(["ab"], [], 8) == [text] and len(text) >= 4
    stop = text[2:4]
    assert scorer.generate_until(["ab"], ["\x00never", stop], 8) == [text[: text.find(stop)]]
    res = harness.run_eval(
        scorer, ["tiny_gen"], include_path=str(setup / "tasks"), log_samples=True,
        bootstrap_iters=0,
    )  # fmt: skip
    for s in res["samples"]["tiny_gen"]:
        ((ctx, kw),) = s["arguments"]
        assert kw["until"] == ["e"] and s["resps"] == [scorer.generate_until([ctx], ["e"], 8)]
        assert "e" not in s["resps"][0][0]


def test_eval_command_prints_the_table_and_writes_json(setup, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["eval", "--ckpt", str(setup / "masked"), "--tasks", "tiny_choice,tiny_gen",
               "--include-path", str(setup / "tasks"), "--mc-samples", "4", "--limit", "1",
               "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0 and "tiny_choice" in printed and "exact_match" in printed
    got = json.loads(out.read_text())["results"]
    assert set(got) == {"tiny_choice", "tiny_gen"} and "acc,none" in got["tiny_choice"]


def test_ar_checkpoint_scores_exactly_but_a_generation_task_is_one_line(setup, capsys):
    """An autoregressive checkpoint serves loglikelihood exactly (summed log-softmax);
    a generate_until task is refused before any request, in one line naming the task."""
    scorer = harness.load_scorer(str(setup / "ar"))
    ll, _ = scorer.loglikelihood("ab", "cd")
    x = torch.tensor([list(b"abcd")])
    with torch.no_grad():
        logp = torch.log_softmax(scorer.model(x)[0, 1:3].double(), -1)
    assert ll == pytest.approx(float(logp[0, ord("c")] + logp[1, ord("d")]), abs=1e-5)
    rc = main(["eval", "--ckpt", str(setup / "ar"), "--tasks", "tiny_gen",
               "--include-path", str(setup / "tasks")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "task tiny_gen" in err and "generate_until" in err


def test_a_continuation_longer_than_the_window_is_one_line(setup):
    scorer = harness.load_scorer(str(setup / "masked"), mc_samples=2)
    with pytest.raises(UnservableRequest, match=r"task t: a continuation of 60 tokens"):
        scorer.loglikelihood("ab", "x" * 60, what="task t")
    long_ctx = scorer.loglikelihood("z" * 100, "cd")  # a long context keeps its last tokens
    assert long_ctx == scorer.loglikelihood("z" * 46, "cd")


def test_a_task_whose_data_file_is_missing_is_one_line(setup, tmp_path, capsys):
    (tmp_path / "broken.yaml").write_text(CHOICE_YAML.replace("tiny_choice", "broken").format(
        data=tmp_path / "absent.jsonl"))  # fmt: skip
    rc = main(["eval", "--ckpt", str(setup / "masked"), "--tasks", "broken",
               "--include-path", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "broken" in err[0]


def test_the_registered_model_type_takes_model_args_strings(setup):
    """`lm_eval --model lm_core --model_args ckpt=DIR,mc_samples=8,seed=3` builds the same
    scorer as load_scorer, and answers a request as the scorer does."""
    from lm_eval.api.registry import get_model  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    lm = get_model("lm_core").create_from_arg_string(
        f"ckpt={setup / 'masked'},mc_samples=8,seed=3", {"batch_size": "4", "device": None}
    )
    assert (lm.scorer.mc_samples, lm.scorer.seed, lm.scorer.batch_size) == (8, 3, 4)
    req = SimpleNamespace(args=("ab", " cd"), task_name="t")
    direct = harness.load_scorer(str(setup / "masked"), mc_samples=8, batch_size=4, seed=3)
    assert lm.loglikelihood([req]) == [direct.loglikelihood("ab", " cd")]
