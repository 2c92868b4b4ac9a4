"""``lm-core generate`` and ``lm-core score`` for flow checkpoints (the commands dispatch here).

**What ``score`` reports for a flow model.** A flow LM defines no tractable token likelihood here
(the decoder is an argmax read-out and the ODE likelihood of latents is not a likelihood of
tokens), so ``score`` reports two diagnostics, neither a likelihood nor a bound on one:

- the **flow-matching loss**: the velocity MSE per latent dimension (``|v_hat - v|^2``, i.e.
  the 1/t^2-weighted x-MSE, t clamped at ``t_min``) averaged over ``n_t`` stratified noise
  levels ``t_j = (j + 1/2) / n_t`` with noise fixed by ``--seed``, on windows of
  ``max_seq_len`` tokens (unconditional), or on the continuation's cells given the prompt;
- the **codec round-trip accuracy**: the share of tokens that ``decode(encode(text))`` returns
  exactly (how much the bottleneck loses; 1.0 is lossless).

Lower flow loss is better; it is comparable only between models sharing the same codec.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lm_core.corruption import flow_interpolate
from lm_core.flow.denoiser import velocity_weight
from lm_core.flow.model import load_flow_checkpoint
from lm_core.flow.sampling import SAMPLERS, generate_flow


@torch.no_grad()
def flow_score(model, ids: list[int], *, n_prompt: int = 0, n_t: int = 16, seed: int = 0) -> dict:
    """Flow loss (mean over t_j, cells, dims) of ``ids`` (its first n_prompt cells given).

    Returns {"flow_loss", "x_mse", "codec_acc", "n_tokens"}; ``n_tokens`` counts scored cells.
    """
    den, codec, flow = model.denoiser, model.codec, model.flow
    dev = next(model.parameters()).device
    L = den.cfg.max_seq_len
    if n_prompt and len(ids) > L:
        raise ValueError(f"prompt + continuation = {len(ids)} tokens exceeds max_seq_len={L}")
    g = torch.Generator(device=dev).manual_seed(seed)
    t = (torch.arange(n_t, device=dev, dtype=torch.float32) + 0.5) / n_t
    w = velocity_weight(t, flow.t_min)[:, None]
    tot = {"flow_loss": 0.0, "x_mse": 0.0, "hit": 0, "n": 0}
    for start in range(0, len(ids), L):
        win = torch.tensor(ids[start : start + L], device=dev)[None]
        x = codec.encode(win)
        tot["hit"] += int((codec.decode(x) == win).sum())
        given = torch.zeros_like(win, dtype=torch.bool)
        given[:, :n_prompt] = True
        if n_prompt and codec.contextual:
            x_p = codec.encode(win, attn_mask=given[:, None, None, :])
            x = torch.where(given[..., None], x_p, x)
        xs, gv = x.expand(n_t, -1, -1), given.expand(n_t, -1)
        eps = torch.randn(xs.shape, generator=g, device=dev)
        z = torch.where(gv[..., None], xs, flow_interpolate(xs, eps, t))
        se = (den(z, t, given=gv).float() - xs).pow(2).mean(-1)[:, ~given[0]]  # [n_t, cells]
        tot["flow_loss"] += float((se * w).mean(0).sum())
        tot["x_mse"] += float(se.mean(0).sum())
        tot["n"] += se.shape[1]
    n = max(tot["n"], 1)
    return {
        "flow_loss": tot["flow_loss"] / n,
        "x_mse": tot["x_mse"] / n,
        "codec_acc": tot["hit"] / max(len(ids), 1),
        "n_tokens": tot["n"],
    }


def generate(args) -> int:
    """Branch of ``lm-core generate`` for a flow checkpoint (``--sampler euler|sde``)."""
    model, tok, _ = load_flow_checkpoint(args.ckpt, args.device)
    if tok is None:
        raise FileNotFoundError(f"{args.ckpt}: no tokenizer in the checkpoint")
    sampler = "euler" if args.sampler == "low_confidence" else args.sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler: a flow checkpoint takes one of {SAMPLERS}, got {sampler!r}")
    texts, s = generate_flow(
        model, tok, args.prompt, gen_length=args.gen_length, steps=args.steps or 32,
        sampler=sampler, churn=getattr(args, "churn", 0.5), cfg_scale=args.cfg, seed=args.seed,
    )  # fmt: skip
    for text in texts:
        print(text)
    print(
        f"# sampler={sampler} nfe={s.nfe} forward_passes={s.forward_passes} "
        f"seconds={s.seconds:.3f} tokens_per_s={s.tokens_per_second:.1f}"
    )
    return 0


def score(args) -> int:
    """Branch of ``lm-core score`` for a flow checkpoint (see the module docstring)."""
    model, tok, _ = load_flow_checkpoint(args.ckpt, args.device)
    if tok is None:
        raise FileNotFoundError(f"{args.ckpt}: no tokenizer in the checkpoint")
    if args.text is not None:
        path = Path(args.text)
        if not path.is_file():
            raise FileNotFoundError(f"--text: {path} does not exist")
        ids, n_prompt = tok.encode(path.read_text(encoding="utf-8")), 0
    else:
        prompt = tok.encode(args.prompt or "")
        ids, n_prompt = prompt + tok.encode(args.continuation), len(prompt)
    r = flow_score(model, ids, n_prompt=n_prompt, n_t=min(args.samples, 64), seed=args.seed)
    print(
        f"flow-matching loss {r['flow_loss']:.4f} (velocity MSE per latent dim, "
        f"{min(args.samples, 64)} stratified t; not a likelihood bound); x-MSE {r['x_mse']:.4f}; "
        f"codec round-trip accuracy {r['codec_acc']:.3f}; over {r['n_tokens']} tokens"
    )
    return 0
