"""GPU check of sharded training: MFU, memory against the dry-run count, and a one-GPU FSDP fit
whose checkpoint ``lm-core generate`` reloads. Needs one CUDA GPU (about 5 minutes on an H100).

    python -m benchmarks.lm_fsdp_check                 # all parts
    python -m benchmarks.lm_fsdp_check --parts mfu     # mfu, memory, fit, flex (comma-separated)

Protocol.

- ``mfu``: a masked-diffusion LM of ~340M parameters (d_model 1024, 24 layers, 16 heads, vocab
  32768) at 4096-token context: one packed row of 4096 random tokens per step (one document,
  the varlen/flash path), the masked-only loss, backward, fused AdamW. bf16 autocast on one GPU
  (``single``), and FSDP2 over a one-rank process group with the bf16 parameter policy
  (``fsdp1``); each with and without ``torch.compile`` per block. 3 (compile: 8) warm-up steps,
  then ``--steps`` timed steps. MFU = model FLOPs (:mod:`lm_core.train.throughput`, the head on
  the masked share) / time / the GPU's dense bf16 peak. Goal: MFU >= 40 % on an H100.
- ``memory``: the same model and row, peak ``torch.cuda.max_memory_allocated`` of a training
  step with and without activation checkpointing, against :func:`estimate_memory`'s count (a
  single rank, bf16; the count takes every position masked, here about half are).
- ``fit``: ``lm-core fit`` on tiny-masked with ``trainer.strategy fsdp``, one GPU, bf16-mixed,
  activation checkpointing, 20 steps; then ``lm-core generate`` on its ``final/``.
- ``flex``: a ~110M masked-diffusion LM (d_model 768, 12 layers, 12 heads, vocab 32768) on one
  packed row of 4096 tokens holding 16 documents of random lengths (seed 0), bf16 autocast,
  fused AdamW: seconds per training step with ``attn_backend`` sdpa (dense [1, 1, T, T] mask),
  flex (BlockMask, compiled kernel) and auto (varlen/flash); then the block-causal model
  (``block_causal`` 16, BD3-LM's dual stream, 2T = 8192 cells) with sdpa and flex. 3 warm-up
  steps (flex compiles there), then ``--steps`` timed steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.distributed.device_mesh import init_device_mesh

from benchmarks.common import base_parser, finish, print_header, results_dir
from lm_core.config import ModelConfig, ObjectiveConfig, OptimConfig
from lm_core.train import sharding
from lm_core.train.estimate import GIB, estimate_memory
from lm_core.train.module import DiffusionLM
from lm_core.train.sharding import ScaleOptions
from lm_core.train.throughput import peak_flops, train_flops

ROOT = Path(__file__).resolve().parents[1]
SHAPE = ModelConfig(
    vocab_size=32768, d_model=1024, n_layers=24, n_heads=16, max_seq_len=4096, attn_backend="auto"
)
T = 4096


def _module(compile_: bool, ckpt: bool, shape: ModelConfig = SHAPE) -> DiffusionLM:
    module = DiffusionLM(
        shape, ObjectiveConfig(), OptimConfig(), max_steps=1000, mask_id=shape.vocab_size - 1,
        scale=ScaleOptions(compile=compile_, activation_checkpointing=ckpt),
    )  # fmt: skip
    module.configure_model()
    return module.cuda()


def _batch():
    g = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(0, SHAPE.vocab_size - 1, (1, T), device="cuda", generator=g)
    return {"input_ids": ids, "cu_seqlens": torch.tensor([0, T], dtype=torch.int32, device="cuda")}


def _steps(module, net, batch, n: int, autocast: bool) -> tuple[float, float]:
    """Seconds per step and mean masked share over ``n`` steps."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    fracs = []
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(n):
        g = torch.Generator(device="cuda").manual_seed(i)
        with torch.autocast("cuda", torch.bfloat16, enabled=autocast):
            loss, stats = module.loss_fn(net, batch, module.objective, g, module.mask_id)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        fracs.append(float(stats["masked_frac"]))
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n, sum(fracs) / len(fracs)


def _init_single_rank_group() -> None:
    if torch.distributed.is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    torch.distributed.init_process_group("nccl", rank=0, world_size=1)


def part_mfu(steps: int) -> list[dict]:
    rows, peak = [], peak_flops(torch.device("cuda"), "bf16-mixed")
    batch = _batch()
    for setting in ("single", "fsdp1"):
        for compile_ in (False, True):
            torch.manual_seed(0)
            module = _module(compile_, ckpt=False)
            net, autocast = module.net, True
            if setting == "fsdp1":
                _init_single_rank_group()
                mesh = init_device_mesh("cuda", (1,))
                sharding.shard(net, mesh, bf16=True)
                autocast = False  # the FSDP policy casts the parameters
            _steps(module, net, batch, 8 if compile_ else 3, autocast)
            dt, frac = _steps(module, net, batch, steps, autocast)
            flops = train_flops(SHAPE, batch, frac)
            rows.append(
                {
                    "part": "mfu",
                    "setting": setting + ("+compile" if compile_ else ""),
                    "params_M": round(net.num_parameters() / 1e6, 1),
                    "tokens_per_s": round(T / dt),
                    "mfu": round(flops / dt / peak, 4) if peak else float("nan"),
                    "peak_GiB": round(torch.cuda.max_memory_allocated() / GIB, 2),
                }
            )
            print(rows[-1], flush=True)
            del module, net
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    return rows


def part_memory() -> list[dict]:
    rows, batch = [], _batch()
    for ckpt in (False, True):
        torch.cuda.empty_cache()
        torch.manual_seed(0)
        module = _module(False, ckpt)
        _steps(module, module.net, batch, 1, True)  # optimizer state exists from here on
        torch.cuda.reset_peak_memory_stats()
        _, frac = _steps(module, module.net, batch, 2, True)
        measured = torch.cuda.max_memory_allocated()
        est = estimate_memory(
            SHAPE, module.net.num_parameters(), tokens=T, world=1, fsdp=False, bf16=True,
            activation_checkpointing=ckpt, masked_frac=frac,
        )  # fmt: skip
        rows.append(
            {
                "part": "memory",
                "setting": "checkpointing" if ckpt else "no checkpointing",
                "measured_GiB": round(measured / GIB, 2),
                "estimate_GiB": round(est.total / GIB, 2),
                "ratio": round(est.total / measured, 3),
            }
        )
        print(rows[-1], flush=True)
        del module
    return rows


def part_fit() -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        fit = [
            sys.executable, "-m", "lm_core.cli", "fit", "--config", "configs/lm/tiny-masked.yaml",
            "--out_dir", str(out), "--trainer.strategy", "fsdp", "--trainer.accelerator", "gpu",
            "--trainer.devices", "1", "--trainer.precision", "bf16-mixed",
            "--trainer.activation_checkpointing", "true", "--trainer.max_steps", "20",
            "--trainer.progress_bar", "false",
        ]  # fmt: skip
        t0 = time.perf_counter()
        p = subprocess.run(fit, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
        fit_s = time.perf_counter() - t0
        if p.returncode:
            print(p.stderr[-3000:])
        gen = [
            sys.executable, "-m", "lm_core.cli", "generate", "--ckpt", str(out / "final"),
            "--prompt", "ROMEO:", "--gen-length", "32",
        ]  # fmt: skip
        q = subprocess.run(gen, cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
        if q.returncode:
            print(q.stderr[-3000:])
        row = {
            "part": "fit",
            "setting": "lm-core fit fsdp 1 GPU bf16 + generate",
            "fit_rc": p.returncode,
            "fit_s": round(fit_s, 1),
            "generate_rc": q.returncode,
            "generated": q.stdout.strip().splitlines()[0][:60] if q.stdout.strip() else "",
        }
    print(row, flush=True)
    return [row]


def _packed_batch(n_docs: int = 16):
    """One row of T tokens packing ``n_docs`` documents of random lengths (seed 0)."""
    g = torch.Generator().manual_seed(0)
    cuts = torch.randperm(T - 1, generator=g)[: n_docs - 1].add(1).sort().values
    cu = torch.cat([torch.tensor([0]), cuts, torch.tensor([T])]).to(torch.int32)
    ids = torch.randint(0, SHAPE.vocab_size - 1, (1, T), generator=g)
    return {"input_ids": ids.cuda(), "cu_seqlens": cu.cuda()}


def part_flex(steps: int) -> list[dict]:
    rows, batch = [], _packed_batch()
    shape = dict(vocab_size=32768, d_model=768, n_layers=12, n_heads=12, max_seq_len=T)
    settings = [(0, "sdpa"), (0, "flex"), (0, "auto"), (16, "sdpa"), (16, "flex")]
    base = None
    for block, backend in settings:
        torch.manual_seed(0)
        cfg = ModelConfig(**shape, block_causal=block, attn_backend=backend)
        module = _module(False, ckpt=False, shape=cfg)
        _steps(module, module.net, batch, 3, True)
        torch.cuda.reset_peak_memory_stats()
        dt, _ = _steps(module, module.net, batch, steps, True)
        base = dt if backend == "sdpa" else base
        rows.append(
            {
                "part": "flex",
                "setting": ("block-causal 16 " if block else "packed ") + backend,
                "params_M": round(module.net.num_parameters() / 1e6, 1),
                "step_ms": round(dt * 1e3, 1),
                "speedup_vs_sdpa": round(base / dt, 2),
                "peak_GiB": round(torch.cuda.max_memory_allocated() / GIB, 2),
            }
        )
        print(rows[-1], flush=True)
        del module
        torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = base_parser("GPU check of sharded training: MFU, memory count, FSDP fit + reload.")
    ap.add_argument(
        "--parts", default="mfu,memory,fit,flex", help="comma-separated: mfu,memory,fit,flex"
    )
    ap.add_argument("--steps", type=int, default=10, help="timed steps per MFU setting")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.lm_fsdp_check: needs a CUDA GPU, found none", file=sys.stderr)
        return 2
    m = print_header("lm_fsdp_check", [__doc__.split("Protocol.")[1].strip()], a)
    parts = [p.strip() for p in a.parts.split(",") if p.strip()]
    rows: list[dict] = []
    for name, fn in (("mfu", lambda: part_mfu(a.steps)), ("memory", part_memory),
                     ("fit", part_fit), ("flex", lambda: part_flex(a.steps))):  # fmt: skip
        if name in parts:
            rows += fn()
    cols = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("part", "setting"), k))
    finish("lm_fsdp_check", rows, cols, results_dir(a.out, a.quick), m, key=("part",))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
