"""2-process DDP on CPU (gloo): ``lm-core fit`` with strategy ddp keeps the ranks in sync.

The test runs this file as a script in a subprocess; Lightning's DDP launcher then starts the
second rank by re-running the same command. Each rank writes its final weights and the token sum
of its first batch, and the test checks the weights are identical and the data differs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch

from lm_core.train.config import parse
from lm_core.train.run import run

HERE = Path(__file__).resolve()
ROOT = HERE.parents[3]


def test_ddp_two_ranks_stay_in_sync(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(HERE), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world_size"] == r1["world_size"] == 2 and r0["step"] == r1["step"] == 6
    assert r0["first_batch_sum"] != r1["first_batch_sum"]  # each rank trains on its own shard
    initial = r0["initial"]
    moved = False
    for name, w in r0["weights"].items():
        torch.testing.assert_close(w, r1["weights"][name], rtol=0, atol=0, msg=name)
        moved = moved or not torch.equal(w, initial[name])
    assert moved
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def _main(out: Path) -> None:
    class Record(L.Callback):
        def on_train_start(self, trainer, pl_module):
            self.initial = {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()}
            self.first = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if self.first is None:
                self.first = int(batch["input_ids"].sum())

        def on_train_end(self, trainer, pl_module):
            state = {
                "weights": {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()},
                "initial": self.initial,
                "first_batch_sum": self.first,
                "world_size": trainer.world_size,
                "step": trainer.global_step,
            }
            torch.save(state, out / f"rank{trainer.global_rank}.pt")

    torch.set_num_threads(1)
    cfg = parse(
        [
            "--config",
            str(ROOT / "configs" / "lm" / "tiny-masked.yaml"),
            "--out_dir",
            str(out / "run"),
            "--trainer.strategy=ddp",
            "--trainer.devices=2",
            "--trainer.accelerator=cpu",
            "--trainer.max_steps=6",
            "--trainer.val_check_interval=3",
            "--trainer.limit_val_batches=2",
            "--trainer.progress_bar=false",
            "--data.max_chars=20000",
        ]
    )
    run(cfg, callbacks=[Record()])


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
