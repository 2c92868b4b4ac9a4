"""Writes tiny-sft.jsonl: a SYNTHETIC SFT task with checkable answers (not real data).

- single-digit addition, every pair: prompt "3+5=", response "8";
- reversing 3-letter strings over a-f: prompt "reverse abc", response "cba";
- a few two-turn chats (``messages``) whose last answer is a sum, to exercise multi-turn format.

    python configs/lm/data/make_tiny_sft.py
"""

import itertools
import json
import random
from pathlib import Path


def examples() -> list[dict]:
    out = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(10) for b in range(10)]
    rng = random.Random(0)
    words = ["".join(w) for w in itertools.permutations("abcdef", 3)]
    for w in rng.sample(words, 60):
        out.append({"prompt": f"reverse {w}", "response": w[::-1]})
    for _ in range(20):
        a, b, c, d = (rng.randrange(10) for _ in range(4))
        out.append(
            {
                "messages": [
                    {"role": "user", "content": f"{a}+{b}="},
                    {"role": "assistant", "content": str(a + b)},
                    {"role": "user", "content": f"{c}+{d}="},
                    {"role": "assistant", "content": str(c + d)},
                ]
            }
        )
    rng.shuffle(out)
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("tiny-sft.jsonl")
    path.write_text("".join(json.dumps(ex) + "\n" for ex in examples()))
    print(f"wrote {path}")
