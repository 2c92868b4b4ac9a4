"""The lm-evaluation-harness model type ``lm_core`` and :func:`run_eval` (``lm-core eval``).

Importing this module registers ``lm_core`` with the harness, so that
``lm_eval --model lm_core --model_args ckpt=DIR,mc_samples=64 --tasks ...`` works too once
``lm_core.eval.harness`` is imported (``lm-core eval`` does it). The model answers the harness's
request kinds through :class:`lm_core.eval.requests.CheckpointScorer`; see there for what each
returns.

Tasks are checked before any request is built: a task that needs images or audio, or a request
kind the checkpoint cannot answer (``generate_until`` on an autoregressive checkpoint), is
refused with one line naming the task. Task names are looked up in ``include_path`` first; the
harness's built-in task index (about 15,000 YAML files, tens of seconds to scan) is read only
when a name is not found there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lm_eval import simple_evaluate
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.tasks import TaskManager
from lm_eval.utils import make_table

from lm_core.eval.requests import CheckpointScorer, UnservableRequest
from lm_core.flow.model import is_flow_checkpoint
from lm_core.outputs import one_line
from lm_core.text.llada import load_any

SERVED = {
    "masked": ("loglikelihood", "multiple_choice", "loglikelihood_rolling", "generate_until"),
    "ar": ("loglikelihood", "multiple_choice", "loglikelihood_rolling"),
}
"""Checkpoint kind -> the harness output types it can serve."""


@register_model("lm_core")
class LMCoreLM(LM):
    """lm-eval model over an lm_core (or LLaDA-format) checkpoint.

    Args (``--model_args`` strings are converted): ``ckpt`` (folder), ``mc_samples``,
    ``batch_size``, ``seed``, ``device``, ``block_length``, ``steps_per_block``, ``sampler``,
    ``tau``; or ``scorer``: a ready :class:`CheckpointScorer` (then the others are ignored).
    """

    def __init__(
        self, ckpt: str | None = None, *, scorer: CheckpointScorer | None = None,
        mc_samples=64, batch_size=16, seed=0, device="cpu", block_length=32,
        steps_per_block=None, sampler="low_confidence", tau=0.9, max_batch_size=None,
    ) -> None:  # fmt: skip
        super().__init__()
        if scorer is None:
            if ckpt is None:
                raise ValueError("ckpt: expected a checkpoint folder")
            scorer = load_scorer(
                ckpt, device=str(device or "cpu"), mc_samples=int(mc_samples),
                batch_size=int(batch_size if batch_size not in (None, "auto") else 16),
                seed=int(seed), block_length=int(block_length), sampler=str(sampler),
                steps_per_block=None if steps_per_block is None else int(steps_per_block),
                tau=float(tau),
            )  # fmt: skip
        self.scorer = scorer

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """``Instance.args`` = (context, continuation) -> (log p, is_greedy) each."""
        return [self.scorer.loglikelihood(*r.args, what=f"task {r.task_name}") for r in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """``Instance.args`` = (text,) -> log p(text) each."""
        return [self.scorer.loglikelihood_rolling(r.args[0]) for r in requests]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """``Instance.args`` = (context, gen_kwargs): ``until`` (str or list), ``max_gen_toks``
        (default 256); requests with equal settings are generated in batches."""
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            kw = dict(r.args[1] or {})
            until = kw.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            key = (until, int(kw.get("max_gen_toks", 256)), r.task_name)
            groups.setdefault(key, []).append(i)
        out: list[str] = [""] * len(requests)
        for (until, max_toks, task), idx in groups.items():
            texts = self.scorer.generate_until(
                [requests[i].args[0] for i in idx], until, max_toks, what=f"task {task}"
            )
            for i, t in zip(idx, texts, strict=True):
                out[i] = t
        return out


def load_scorer(ckpt: str, *, device: str = "cpu", **settings) -> CheckpointScorer:
    """A :class:`CheckpointScorer` on a checkpoint folder (lm_core or LLaDA format)."""
    if is_flow_checkpoint(ckpt):
        raise UnservableRequest(
            f"--ckpt: {ckpt} is a flow checkpoint, which has no likelihood and no "
            "sampler the harness can call; evaluate masked or AR checkpoints"
        )
    model, tok, meta = load_any(ckpt, device)
    if tok is None:
        raise FileNotFoundError(f"{ckpt}: no tokenizer in the checkpoint")
    model.eval()
    return CheckpointScorer(model, tok, meta, **settings)


def check_task(name: str, task, kind: str) -> None:
    """UnservableRequest (one line naming the task) if a ``kind`` checkpoint cannot serve it."""
    if getattr(task, "MULTIMODAL", False):
        raise UnservableRequest(
            f"task {name}: needs images or audio (doc_to_image / doc_to_audio); the lm_core "
            "adapter reads text only"
        )
    out = task.get_config("output_type") or getattr(task, "OUTPUT_TYPE", None)
    if out not in SERVED[kind]:
        raise UnservableRequest(
            f"task {name}: output_type {out!r} cannot be served by a {kind} checkpoint; "
            f"it serves {', '.join(SERVED[kind])}"
        )


def load_tasks(names: list[str], include_path: str | None) -> tuple[TaskManager, dict]:
    """(task manager, ``TaskManager.load`` result) for task names; unknown names: one line."""
    if include_path is not None and not Path(include_path).is_dir():
        raise FileNotFoundError(f"--include-path: {include_path} is not a folder")
    tm = TaskManager(include_path=include_path, include_defaults=False) if include_path else None
    if tm is None or any(n not in tm.all_tasks for n in names):
        tm = TaskManager(include_path=include_path)  # the built-in index: slow to scan
    unknown = [n for n in names if n not in tm.all_tasks]
    if unknown:
        where = f" (nor in --include-path {include_path})" if include_path else ""
        raise ValueError(f"--tasks: no lm-eval task named {', '.join(unknown)}{where}")
    try:
        return tm, tm.load(names)
    except (KeyError, TypeError, ValueError, OSError) as e:  # a broken YAML file or data path
        raise ValueError(f"--tasks: could not load {', '.join(names)}: {one_line(e)}") from None


def run_eval(
    scorer: CheckpointScorer,
    tasks: list[str],
    *,
    include_path: str | None = None,
    limit: int | None = None,
    num_fewshot: int | None = None,
    bootstrap_iters: int = 1000,
    log_samples: bool = False,
    verbose: bool = False,
) -> dict:
    """Evaluate ``scorer``'s checkpoint on lm-eval tasks; the harness's results dict (with
    ``samples``, each document's requests and answers, when ``log_samples``). The harness logs
    errors only unless ``verbose``."""
    logging.getLogger("lm_eval").setLevel(logging.INFO if verbose else logging.ERROR)
    tm, loaded = load_tasks(tasks, include_path)
    for name, task in loaded["tasks"].items():
        check_task(name, task, scorer.kind)
    return simple_evaluate(
        model=LMCoreLM(scorer=scorer), tasks=list(tasks), task_manager=tm,
        limit=limit, num_fewshot=num_fewshot, bootstrap_iters=bootstrap_iters,
        random_seed=scorer.seed, numpy_random_seed=scorer.seed, torch_random_seed=scorer.seed,
        fewshot_random_seed=scorer.seed, log_samples=log_samples,
    )  # fmt: skip


def table(results: dict) -> str:
    """The harness's Markdown table of a results dict."""
    return make_table(results)
