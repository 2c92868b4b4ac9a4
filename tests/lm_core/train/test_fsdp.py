"""2-process FSDP2 on CPU (gloo): ``lm-core fit`` with ``trainer.strategy fsdp``.

The test runs this file as a script in subprocesses (Lightning's launcher starts the second
rank by re-running the command): once with fsdp and activation checkpointing, once with ddp as
the reference. Each rank records what it holds; the test checks that the model was built on the
meta device and materialised shard by shard into the weights a direct build makes, that each
rank holds half of every parameter, that sharded training follows the DDP run step for step, and
that ``final/`` holds the full gathered weights (bf16 FSDP needs CUDA: benchmarks.lm_fsdp_check).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from lm_core.checkpoint import load_checkpoint
from lm_core.config import ConfigError, ModelConfig
from lm_core.nn.transformer import Transformer
from lm_core.train import module as train_module
from lm_core.train import setup as train_setup
from lm_core.train import sharding
from lm_core.train.config import parse
from lm_core.train.run import run

HERE = Path(__file__).resolve()
ROOT = HERE.parents[3]
TINY = str(ROOT / "configs" / "lm" / "tiny-masked.yaml")


def _launch(out: Path, strategy: str, init_from: str = "") -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(HERE), str(out), strategy, init_from],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_fsdp_two_ranks_shard_train_like_ddp_and_export_full_weights(tmp_path):
    _launch(tmp_path / "fsdp", "fsdp")
    _launch(tmp_path / "ddp", "ddp")
    r0 = torch.load(tmp_path / "fsdp" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "fsdp" / "rank1.pt", weights_only=True)
    assert r0["built_on_meta"] and r1["built_on_meta"]
    assert r0["step"] == r1["step"] == 6 and r0["world_size"] == 2
    # each rank holds its half of every parameter (dim 0 split 130 + 129 for 259 rows)
    full_rows = r0["initial"]["tok_emb.weight"].shape[0]
    assert r0["local_rows"] + r1["local_rows"] == full_rows == 259
    assert abs(r0["local_rows"] - r1["local_rows"]) <= 1
    # materialised shard by shard = the weights one process builds from the same seed
    cfg = ModelConfig.from_dict(
        load_checkpoint(tmp_path / "fsdp" / "run" / "final")[0].cfg.to_dict()
    )
    torch.manual_seed(0)
    direct = Transformer(cfg).state_dict()
    for name, w in direct.items():
        torch.testing.assert_close(r0["initial"][name], w, rtol=0, atol=0, msg=name)
    for rank in (r0, r1):  # RoPE buffer rebuilt after materialisation (1.0 first, not garbage)
        torch.testing.assert_close(rank["inv_freq"], Transformer(cfg).rope.inv_freq)
    # sharded training (activation checkpointing on) follows DDP
    ddp = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    moved = False
    for name, w in ddp["final"].items():
        torch.testing.assert_close(r0["final"][name], w, rtol=1e-4, atol=1e-5, msg=name)
        moved = moved or not torch.equal(w, r0["initial"][name])
    assert moved
    # final/ holds the gathered full weights, written by rank 0
    exported = load_file(str(tmp_path / "fsdp" / "run" / "final" / "model.safetensors"))
    for name, w in exported.items():
        torch.testing.assert_close(w, r0["final"][name], rtol=0, atol=0, msg=name)
    for name in ("latest", "best", "last.ckpt"):
        assert (tmp_path / "fsdp" / "run" / name).exists()
    # init_from under FSDP: rank 0 alone reads the weights and broadcasts them into the shards
    _launch(tmp_path / "init", "fsdp", str(tmp_path / "fsdp" / "run" / "final"))
    i0 = torch.load(tmp_path / "init" / "rank0.pt", weights_only=True)
    i1 = torch.load(tmp_path / "init" / "rank1.pt", weights_only=True)
    for name, w in exported.items():
        torch.testing.assert_close(i0["initial"][name], w, rtol=0, atol=0, msg=name)
    assert i0["weight_reads"] >= 1 and i1["weight_reads"] == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--optim.ema_decay", "0.99"], "optim.ema_decay"),
        (["--trainer.precision", "bf16-mixed", "--trainer.accelerator", "cpu"], "needs CUDA"),
        (["--trainer.precision", "16-mixed"], "trainer.precision"),
    ],
)
def test_what_fsdp_does_not_do_is_one_line(tmp_path, args, needle):
    cfg = parse(["--config", TINY, "--out_dir", str(tmp_path), "--trainer.strategy", "fsdp", *args])
    with pytest.raises(ConfigError, match=needle):
        run(cfg)


def test_fsdp_units_are_each_block_then_the_root():
    with torch.device("meta"):
        net = Transformer(ModelConfig(vocab_size=50, d_model=32, n_layers=3, n_heads=4))
    units = sharding.fsdp_units(net)
    assert units[:-1] == list(net.blocks) and units[-1] is net


def _gathered(module) -> dict:
    return {k: v.clone() for k, v in sharding.full_state_dict(module.net).items()}


def _count_weight_reads() -> dict:
    """Count calls of load_any (the full checkpoint read) in this process."""
    counter = {"n": 0}
    for mod in (train_module, train_setup):
        real = mod.load_any

        def counted(*a, _real=real, **kw):
            counter["n"] += 1
            return _real(*a, **kw)

        mod.load_any = counted
    return counter


def _main(out: Path, strategy: str, init_from: str) -> None:
    reads = _count_weight_reads()

    class Record(L.Callback):
        def on_fit_start(self, trainer, pl_module):
            self.built_on_meta = pl_module.scale.fsdp  # configure_model ran after __init__

        def on_train_start(self, trainer, pl_module):
            net = pl_module.net
            w = net.tok_emb.weight
            self.local_rows = (w.to_local() if hasattr(w, "to_local") else w).shape[0]
            fsdp = pl_module.scale.fsdp
            self.initial = _gathered(pl_module) if fsdp else dict(net.state_dict())
            self.initial = {k: v.detach().clone() for k, v in self.initial.items()}
            self.inv_freq = net.rope.inv_freq.detach().clone()

        def on_train_end(self, trainer, pl_module):
            fsdp = pl_module.scale.fsdp
            final = _gathered(pl_module) if fsdp else dict(pl_module.net.state_dict())
            if trainer.global_rank:
                return
            state = {
                "built_on_meta": self.built_on_meta,
                "initial": self.initial,
                "final": {k: v.detach().clone() for k, v in final.items()},
                "local_rows": self.local_rows,
                "inv_freq": self.inv_freq,
                "world_size": trainer.world_size,
                "step": trainer.global_step,
                "weight_reads": reads["n"],
            }
            torch.save(state, out / f"rank{trainer.global_rank}.pt")

    class RecordRank1(Record):
        def on_train_end(self, trainer, pl_module):
            super().on_train_end(trainer, pl_module)
            if trainer.global_rank == 1:
                torch.save(
                    {
                        "built_on_meta": self.built_on_meta,
                        "local_rows": self.local_rows,
                        "inv_freq": self.inv_freq,
                        "step": trainer.global_step,
                        "weight_reads": reads["n"],
                    },
                    out / "rank1.pt",
                )

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    extra = ["--trainer.activation_checkpointing=true"] if strategy == "fsdp" else []
    if init_from:
        extra += ["--init_from", init_from, "--trainer.max_steps=2"]
    cfg = parse(
        [
            "--config",
            TINY,
            "--out_dir",
            str(out / "run"),
            f"--trainer.strategy={strategy}",
            "--trainer.devices=2",
            "--trainer.accelerator=cpu",
            "--trainer.max_steps=6",
            "--trainer.val_check_interval=3",
            "--trainer.limit_val_batches=2",
            "--trainer.progress_bar=false",
            "--data.max_chars=20000",
            *extra,
        ]
    )
    run(cfg, callbacks=[RecordRank1()])


if __name__ == "__main__":
    _main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
