"""What an lm_core checkpoint answers to the lm-evaluation-harness's request kinds.

:class:`CheckpointScorer` holds a loaded model, its tokenizer and the evaluation settings, and
answers one request at a time (the harness adapter, :mod:`lm_core.eval.harness`, only unpacks
the harness's ``Instance`` objects and calls it):

- **loglikelihood** ``(context, continuation) -> (log p, is_greedy)``. A masked (diffusion)
  checkpoint: the Monte-Carlo ELBO of :func:`lm_core.text.scoring.continuation_loglik` with
  ``mc_samples`` samples and ``seed``, context and continuation tokenised separately, exactly
  what ``lm-core score --prompt CONTEXT --continuation CONT --samples N --seed S`` computes and
  prints (every request uses the same seed: common random numbers across the choices of a
  question). ``is_greedy``: with the whole continuation masked after the context, one forward
  pass predicts every continuation token as its argmax. An autoregressive checkpoint: the exact
  log-probability (EOS is put before an empty context), greedy as usual.
- **loglikelihood_rolling** ``text -> log p``: minus the total NLL of ``[EOS] + tokens``
  over rolling windows, as ``lm-core score --text FILE`` (same samples, seed and default context).
- **generate_until** ``(contexts, until, max_gen_toks) -> texts``: a masked checkpoint samples
  with :func:`lm_core.text.generate.generate` (``gen_length`` = ``max_gen_toks`` rounded up to
  whole blocks; one token per step unless ``steps_per_block`` is set), then each text is cut
  before the first ``until`` string and at EOS. Autoregressive checkpoints do not generate here.

Contexts longer than the model's window keep their last tokens (left truncation, as the
harness's Hugging Face model does); a continuation (or generation budget) that does not fit the
window at all is an :class:`UnservableRequest`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lm_core.text import scoring
from lm_core.text.generate import generate


class UnservableRequest(ValueError):
    """A request (or a task's request kind) this checkpoint cannot answer; one line."""


class CheckpointScorer:
    """Answers loglikelihood, rolling loglikelihood and generation requests for one checkpoint.

    Args:
        model: a :class:`lm_core.Transformer` (``cfg.max_seq_len``, ``cfg.causal``).
        tokenizer: the checkpoint's tokenizer (``encode``, ``decode``, ``eos_id``, ``mask_id``).
        meta: the checkpoint's meta (``mask_id``, ``objective``), as :func:`load_any` returns it.
        mc_samples: Monte-Carlo samples per loglikelihood (masked checkpoints).
        batch_size: samples per forward pass when scoring; prompts per call when generating.
        seed: seed of every loglikelihood's masks and of generation.
        block_length, steps_per_block, sampler, tau, temperature: sampler settings of
            :func:`lm_core.text.generate.generate` for generate_until.
    """

    def __init__(
        self,
        model,
        tokenizer,
        meta: dict,
        *,
        mc_samples: int = 64,
        batch_size: int = 16,
        seed: int = 0,
        block_length: int = 32,
        steps_per_block: int | None = None,
        sampler: str = "low_confidence",
        tau: float = 0.9,
        temperature: float = 0.0,
    ) -> None:
        for name, v in (("mc_samples", mc_samples), ("batch_size", batch_size),
                        ("block_length", block_length)):  # fmt: skip
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        self.model, self.tok = model, tokenizer
        mask_id = meta.get("mask_id")
        self.mask_id = tokenizer.mask_id if mask_id is None else int(mask_id)
        self.ar = meta.get("objective") == "ar" or bool(model.cfg.causal)
        self.max_len = int(model.cfg.max_seq_len)
        self.mc_samples, self.batch_size, self.seed = mc_samples, batch_size, seed
        self.block_length, self.steps_per_block = block_length, steps_per_block
        self.sampler, self.tau, self.temperature = sampler, tau, temperature

    @property
    def kind(self) -> str:
        """``"ar"`` (exact scoring) or ``"masked"`` (ELBO scoring, diffusion sampling)."""
        return "ar" if self.ar else "masked"

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def fit_window(self, prompt: list[int], cont: list[int], what: str) -> list[int]:
        """The prompt's last tokens that fit beside ``cont`` in the model's window."""
        room = self.max_len - len(cont) - (1 if self.ar else 0)
        if len(cont) == 0:
            raise UnservableRequest(f"{what}: the continuation is empty after tokenisation")
        if room < (1 if self.ar else 0):
            raise UnservableRequest(
                f"{what}: a continuation of {len(cont)} tokens does not fit the model's window "
                f"(max_seq_len={self.max_len})"
            )
        return prompt[len(prompt) - room :] if len(prompt) > room else prompt

    def loglikelihood(self, context: str, continuation: str, what: str = "request"):
        """(log p(continuation | context) in nats, is_greedy); see the module docstring."""
        prompt = self.tok.encode(context)
        cont = self.tok.encode(continuation)
        prompt = self.fit_window(prompt, cont, what)
        if self.ar:
            return self._ar_loglik(prompt or [self.tok.eos_id], cont)
        est, _ = scoring.continuation_loglik(
            self.model, prompt, cont, mask_id=self.mask_id, n_samples=self.mc_samples,
            batch_size=self.batch_size, seed=self.seed,
        )  # fmt: skip
        return est, self._masked_greedy(prompt, cont)

    @torch.no_grad()
    def _masked_greedy(self, prompt: list[int], cont: list[int]) -> bool:
        dev = self._device()
        x = torch.tensor([*prompt, *[self.mask_id] * len(cont)], device=dev)[None]
        pred = self.model(x)[0, len(prompt) :].argmax(-1)
        return bool((pred == torch.tensor(cont, device=dev)).all())

    @torch.no_grad()
    def _ar_loglik(self, prompt: list[int], cont: list[int]) -> tuple[float, bool]:
        dev = self._device()
        x = torch.tensor([*prompt, *cont], device=dev)[None]
        logits = self.model(x)[0, len(prompt) - 1 : -1].float()
        target = torch.tensor(cont, device=dev)
        logp = torch.log_softmax(logits, -1).gather(-1, target[:, None]).sum()
        return float(logp), bool((logits.argmax(-1) == target).all())

    def loglikelihood_rolling(self, text: str) -> float:
        """log p(text) in nats: minus the NLL of ``[EOS] + tokens`` over rolling windows."""
        doc = [self.tok.eos_id, *self.tok.encode(text)]
        if self.ar:
            return -scoring.ar_perplexity(self.model, [doc]).nll
        r = scoring.elbo_perplexity(
            self.model, [doc], mask_id=self.mask_id, n_samples=self.mc_samples,
            batch_size=self.batch_size, seed=self.seed,
        )  # fmt: skip
        return -r.nll

    def generate_until(
        self, contexts: Sequence[str], until: Sequence[str], max_gen_toks: int, what: str = ""
    ) -> list[str]:
        """One continuation per context, cut before the first ``until`` string (and at EOS)."""
        if self.ar:
            raise UnservableRequest(
                f"{what or 'generate_until'}: an autoregressive checkpoint does not generate "
                "here; lm_core samples masked (diffusion) checkpoints"
            )
        block = min(self.block_length, max_gen_toks)
        gen_length = block * math.ceil(max_gen_toks / block)
        room = self.max_len - gen_length
        if room < 1:
            raise UnservableRequest(
                f"{what or 'generate_until'}: {gen_length} new tokens (max_gen_toks="
                f"{max_gen_toks}) leave no room for a prompt in max_seq_len={self.max_len}"
            )
        prompts = [self.tok.encode(c)[-room:] or [self.tok.eos_id] for c in contexts]
        steps = gen_length if self.steps_per_block is None else (
            self.steps_per_block * (gen_length // block)
        )  # fmt: skip
        out: list[str] = []
        for i in range(0, len(prompts), self.batch_size):
            res = generate(
                self.model, self.tok, prompts[i : i + self.batch_size], gen_length=gen_length,
                block_length=block, steps=steps, sampler=self.sampler, tau=self.tau,
                temperature=self.temperature, seed=self.seed, mask_id=self.mask_id,
            )  # fmt: skip
            out += [cut_at_stop(t, until) for t in res.texts]
        return out


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """``text`` up to (not including) the earliest occurrence of any ``until`` string."""
    cut = len(text)
    for s in until:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]
