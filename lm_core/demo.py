"""``python -m lm_core.demo`` (``make demo-lm``): a masked diffusion LM on Shakespeare in minutes.

Trains a small bidirectional Transformer (BPE 2048, about 2.5M parameters) with the masked
diffusion ELBO on the embedded Shakespeare corpus for a fixed wall-clock budget on the CPU
(``--seconds``, default 180), then prints

- the ELBO perplexity bound on held-out Shakespeare (Monte-Carlo, stratified mask counts, with a
  95 % interval), per BPE token;
- a few continuations of held-out openings, sampled with :func:`lm_core.sampling.denoise` and
  the LLaDA low-confidence commit policy, block by block.

The checkpoint (weights, config, tokenizer) is written to ``demo_out/lm``. The WSD schedule is
fitted to the budget: after a few calibration steps the run's step count (and with it the
decay tail) is set from the measured time per step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L
import torch

from lm_core.commands.fit import parse, run
from lm_core.sampling import LowConfidence, denoise

CALIBRATION_STEPS = 20


class TimeBudget(L.Callback):
    """Fits max_steps (and so the WSD decay tail) to ``seconds`` of wall clock.

    Every 10 steps until the decay tail begins, the step count is re-estimated from the average
    time per step so far (the machine may be shared, so one early measurement is not enough);
    once decaying, the plan is frozen so the cosine tail runs to its end.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.t0 = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        step = trainer.global_step
        f = trainer.lr_scheduler_configs[0].scheduler.lr_lambdas[0]
        if step < CALIBRATION_STEPS or step % 10 or step >= f.max_steps - f.decay_steps:
            return
        per_step = (time.perf_counter() - self.t0) / step
        n = max(step + 10, int(self.seconds / per_step))
        if n == f.max_steps:
            return
        trainer.fit_loop.epoch_loop.max_steps = n
        pl_module.max_steps = n
        f.__init__(n, f.warmup_steps, pl_module.optim.decay_fraction, f.min_lr_ratio)
        if step == CALIBRATION_STEPS:
            pl_module.print(
                f"time budget {self.seconds:.0f}s: {per_step * 1e3:.0f} ms/step -> {n} steps"
            )


def demo_config(out: Path, seconds: float):
    return parse(
        [
            "--model.vocab_size=null",
            "--model.d_model=192",
            "--model.n_layers=4",
            "--model.n_heads=4",
            "--model.max_seq_len=256",
            "--objective.corruption.stratified=true",
            "--optim.lr=0.002",
            "--optim.warmup_steps=50",
            "--optim.decay_fraction=0.25",
            "--data.train=shakespeare",
            "--data.tokenizer=bpe",
            "--data.bpe_vocab_size=2048",
            "--data.token_budget=256",
            "--data.split_share=0.3",
            "--trainer.accelerator=cpu",
            "--trainer.devices=1",
            "--trainer.precision=32-true",
            f"--trainer.max_steps={max(int(seconds * 20), 100)}",
            "--trainer.val_check_interval=1000000",
            "--trainer.log_every_n_steps=100",
            "--trainer.ckpt_every_n_steps=500",
            "--trainer.progress_bar=false",
            f"--out_dir={out}",
            "--resume=null",
        ]
    )


@torch.no_grad()
def samples(model, tok, openings: list[str], prompt_tokens: int = 16, gen: int = 48) -> list[str]:
    """Continue each opening's first ``prompt_tokens`` tokens by ``gen`` tokens (blocks of 16)."""
    prompts = [tok.encode(o)[:prompt_tokens] for o in openings]
    prompts = [p for p in prompts if len(p) == prompt_tokens]
    x = torch.tensor([p + [tok.mask_id] * gen for p in prompts])
    editable = torch.zeros_like(x, dtype=torch.bool)
    editable[:, prompt_tokens:] = True
    out, stats = denoise(
        lambda z: model(z),
        x,
        editable,
        mask_id=tok.mask_id,
        policy=LowConfidence(temperature=0.7),
        steps=gen,
        block_length=16,
        generator=torch.Generator().manual_seed(0),
    )
    texts = []
    for p, row in zip(prompts, out.tolist(), strict=True):
        texts.append(f"{tok.decode(p)}[[{tok.decode(row[len(p) :])}]]")
    return texts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lm_core.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="training wall-clock budget")
    ap.add_argument("--out", type=Path, default=Path("demo_out/lm"))
    ap.add_argument("--eval-docs", type=int, default=8, help="held-out documents to score")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.perf_counter()
    cfg = demo_config(args.out.parent / "lm-run", args.seconds)
    trainer, module = run(cfg, callbacks=[TimeBudget(args.seconds)])
    tok, net = trainer.datamodule.tokenizer, module.net.eval()
    module.export(args.out, tok)
    print(f"trained {trainer.global_step} steps in {time.perf_counter() - t0:.0f}s")

    from lm_core.data.corpora import load_corpus
    from lm_core.scoring import elbo_perplexity

    held_out = load_corpus("shakespeare", "val")
    docs = [tok.encode(d) for d in held_out[: args.eval_docs]]
    r = elbo_perplexity(net, docs, mask_id=tok.mask_id, n_samples=8, batch_size=8)
    print(
        f"held-out Shakespeare: ELBO perplexity bound {r.ppl:.1f} per BPE token "
        f"(95% {r.ppl_low:.1f}-{r.ppl_high:.1f}; {r.n_tokens} tokens; uniform guess = {tok.vocab_size})"
    )
    print("samples (held-out opening, then [[generated]]):")
    for text in samples(net, tok, [d[:200] for d in held_out[-4:]]):
        print("  " + text.replace("\n", " / "))
    print(f"checkpoint: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
