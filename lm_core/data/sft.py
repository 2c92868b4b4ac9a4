"""Supervised fine-tuning (SFT) data formatting, as in LLaDA's SFT (the loss is
:func:`lm_core.objectives.masked.sft_loss`).

**Examples.** One JSON object per line (JSONL), either ``{"prompt": str, "response": str}`` or a
chat ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`` whose last
message is the assistant's answer. In a multi-turn chat every message but the last assistant turn
is prompt (earlier assistant turns are context, not trained on).

**Template** (:class:`ChatTemplate`, plain text because a byte tokenizer has no chat specials).
With the default markers a two-turn chat renders as::

    <|system|>\\n{system}\\n<|user|>\\n{user 1}\\n<|assistant|>\\n{assistant 1}\\n
    <|user|>\\n{user 2}\\n<|assistant|>\\n      <- end of the prompt
    {assistant 2}<EOS>                          <- the response (EOS is the tokenizer's id)

and ``{"prompt": p, "response": r}`` is the chat ``[user p, assistant r]``. The markers are
ordinary text. At inference, :func:`render_prompt` gives the identical prompt and generation
stops at EOS.

**Batches and loss.** :func:`sft_batch` right-pads every sequence with EOS to a common length;
the response, its EOS and the EOS padding are all *maskable* (the model learns to emit EOS to
end an answer, as LLaDA), the prompt never is. :func:`lm_core.objectives.masked.sft_loss` is
:func:`lm_core.objectives.masked.masked_diffusion_loss` with that ``maskable`` and
``normalise="answer"``: each sequence's weighted CE sum divided by its maskable length.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTemplate:
    """Role markers and separators of the plain-text chat template (see the module docstring)."""

    system: str = "<|system|>\n"
    user: str = "<|user|>\n"
    assistant: str = "<|assistant|>\n"
    end_of_turn: str = "\n"

    def marker(self, role: str) -> str:
        return {"system": self.system, "user": self.user, "assistant": self.assistant}[role]


DEFAULT_TEMPLATE = ChatTemplate()


def _messages(example: dict, where: str) -> list[dict]:
    """Normalise an example to a message list ending with the assistant's answer."""
    if not isinstance(example, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(example).__name__}")
    if "messages" in example:
        msgs = example["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise ValueError(f"{where}: messages: expected a non-empty list")
    elif "prompt" in example and "response" in example:
        msgs = [
            {"role": "user", "content": example["prompt"]},
            {"role": "assistant", "content": example["response"]},
        ]
    else:
        raise ValueError(f"{where}: expected keys 'prompt' and 'response', or 'messages'")
    for i, m in enumerate(msgs):
        if (
            not isinstance(m, dict)
            or m.get("role") not in ROLES
            or not isinstance(m.get("content"), str)
        ):
            raise ValueError(
                f"{where}: messages[{i}]: expected {{'role': one of {ROLES}, 'content': str}}"
            )
    if msgs[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the last message must be the assistant's answer")
    return msgs


def render_prompt(messages: Sequence[dict], template: ChatTemplate = DEFAULT_TEMPLATE) -> str:
    """Prompt text for ``messages`` (all of them context), ending with the assistant marker."""
    parts = [template.marker(m["role"]) + m["content"] + template.end_of_turn for m in messages]
    return "".join(parts) + template.assistant


def answer_prompt(example: dict, template: ChatTemplate = DEFAULT_TEMPLATE) -> str:
    """The prompt text a model answers for an SFT example: every message but the last (the
    reference answer, which is not shown), rendered, ending with the assistant marker."""
    return render_prompt(_messages(example, "example")[:-1], template)


def with_answer(example: dict, answer: str) -> dict:
    """A copy of an SFT example whose response (last message) is ``answer``, in its own format."""
    if "messages" in example:
        msgs = [dict(m) for m in example["messages"]]
        msgs[-1]["content"] = answer
        return {**example, "messages": msgs}
    return {**example, "response": answer}


def format_example(
    example: dict, tokenizer, template: ChatTemplate = DEFAULT_TEMPLATE, *, where: str = "example"
) -> tuple[list[int], int]:
    """One example -> (ids = prompt + response + [EOS], prompt_len)."""
    msgs = _messages(example, where)
    prompt = tokenizer.encode(render_prompt(msgs[:-1], template))
    response = tokenizer.encode(msgs[-1]["content"])
    return list(prompt) + list(response) + [tokenizer.eos_id], len(prompt)


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file of examples; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such SFT file")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ex = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        _messages(ex, f"{path}:{n}")
        out.append(ex)
    return out


def sft_batch(
    examples: Sequence[tuple[Sequence[int], int]], *, eos_id: int, length: int | None = None
) -> dict[str, Tensor]:
    """Formatted examples -> {"input_ids" [B, T] long, "maskable" [B, T] bool, "prompt_len" [B]}.

    Rows are right-padded with EOS to T = ``length`` or the longest; ``maskable`` is True from
    each row's prompt_len on (response, its EOS and the EOS padding).
    """
    T = max(len(ids) for ids, _ in examples) if length is None else length
    B = len(examples)
    input_ids = torch.full((B, T), eos_id, dtype=torch.long)
    prompt_len = torch.zeros(B, dtype=torch.long)
    for b, (ids, pl) in enumerate(examples):
        if len(ids) > T:
            raise ValueError(f"examples[{b}]: {len(ids)} tokens exceed the batch length {T}")
        if not 0 < pl < len(ids):
            raise ValueError(f"examples[{b}]: prompt_len {pl} must be in (0, {len(ids)})")
        input_ids[b, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        prompt_len[b] = pl
    maskable = torch.arange(T)[None] >= prompt_len[:, None]
    return {"input_ids": input_ids, "maskable": maskable, "prompt_len": prompt_len}


class SFTDataset(torch.utils.data.Dataset):
    """Formatted SFT examples from a JSONL file (or a list of dicts); each item is
    ``(ids, prompt_len)``; use :func:`sft_batch` (``functools.partial(sft_batch, eos_id=...)``)
    as the DataLoader's ``collate_fn``. Examples longer than ``max_len`` are a ValueError."""

    def __init__(
        self,
        source,
        tokenizer,
        template: ChatTemplate = DEFAULT_TEMPLATE,
        max_len: int | None = None,
    ) -> None:
        examples = read_jsonl(source) if isinstance(source, (str, Path)) else list(source)
        self.items = []
        for i, ex in enumerate(examples):
            ids, pl = format_example(ex, tokenizer, template, where=f"examples[{i}]")
            if max_len is not None and len(ids) > max_len:
                raise ValueError(f"examples[{i}]: {len(ids)} tokens exceed max_len={max_len}")
            self.items.append((ids, pl))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.items[i]
