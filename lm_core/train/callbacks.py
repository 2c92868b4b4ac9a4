"""Training callbacks and the resumable loader: checkpoint export, a readable log line, and
exact mid-epoch resume of the training data."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch

from lm_core.train.module import batch_tokens


class ResumableLoader:
    """Makes a training ``DataLoader`` exactly resumable (Lightning's ``_Stateful`` protocol).

    Map-style datasets: each epoch's order is a permutation seeded by (seed, epoch) and rank r
    of w takes every w-th index. Iterable datasets with ``set_epoch`` (``PackedDataset``): the
    epoch is set from the trainer (the dataset's plan is a function of its seed and epoch) and
    the loader is iterated as is. Either way, after ``load_state_dict`` the first iteration skips
    the batches the interrupted run already trained on; Lightning keeps ``state_dict()`` in
    ``last.ckpt``.
    """

    def __init__(self, loader, trainer, *, seed: int, shuffle: bool = True) -> None:
        self.loader, self.trainer, self.seed, self.shuffle = loader, trainer, seed, shuffle
        self.iterable = isinstance(loader.dataset, torch.utils.data.IterableDataset)
        self._skip = 0

    def _batches(self, epoch: int) -> list[list[int]]:
        n, world = len(self.loader.dataset), max(self.trainer.world_size, 1)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        per_rank = n // world
        mine = order[self.trainer.global_rank : per_rank * world : world]
        bs = self.loader.batch_size or 1
        out = [mine[i : i + bs] for i in range(0, len(mine), bs)]
        if self.loader.drop_last and out and len(out[-1]) < bs:
            out.pop()
        return out

    def __len__(self) -> int:
        return len(self.loader) if self.iterable else len(self._batches(0))

    def __iter__(self):
        epoch, skip, self._skip = self.trainer.current_epoch, self._skip, 0
        if self.iterable:
            if hasattr(self.loader.dataset, "set_epoch"):
                self.loader.dataset.set_epoch(epoch)
            rank, world = self.trainer.global_rank, max(self.trainer.world_size, 1)
            if getattr(self.loader.dataset, "splits_ranks", False):  # it yields our share
                rank, world = 0, 1
            for i, batch in enumerate(self.loader):  # rank r takes batches r, r + w, ...
                if i >= skip * world and i % world == rank:
                    yield batch
            return
        batches = self._batches(epoch)
        dl = torch.utils.data.DataLoader(
            self.loader.dataset,
            batch_sampler=batches[skip % max(len(batches), 1) :],
            collate_fn=self.loader.collate_fn,
            num_workers=self.loader.num_workers,
            pin_memory=self.loader.pin_memory,
        )
        yield from dl

    def state_dict(self) -> dict:
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"processed": int(done)}

    def load_state_dict(self, state: dict) -> None:
        self._skip = int(state.get("processed", 0))


class ExportCallback(L.Callback):
    """Writes lm_core checkpoint dirs: ``latest`` and ``best`` after validations, ``final`` at the end."""

    def __init__(self, out_dir, tokenizer) -> None:
        self.out_dir, self.tokenizer = Path(out_dir), tokenizer
        self.best = float("inf")

    @staticmethod
    def _skip(trainer, pl_module) -> bool:
        """Rank 0 exports; under FSDP every rank takes part (the weights are gathered)."""
        sharded = getattr(getattr(pl_module, "scale", None), "fsdp", False)
        return not (trainer.is_global_zero or sharded)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self._skip(trainer, pl_module):
            return
        loss = trainer.callback_metrics.get("val/loss")
        extra = {} if loss is None else {"val_loss": float(loss)}
        pl_module.export(self.out_dir / "latest", self.tokenizer, extra)
        if loss is not None and float(loss) < self.best:
            self.best = float(loss)
            pl_module.export(self.out_dir / "best", self.tokenizer, extra)

    def on_fit_end(self, trainer, pl_module) -> None:
        if not self._skip(trainer, pl_module):
            pl_module.export(self.out_dir / "final", self.tokenizer)


class LastOnStop(L.Callback):
    """Writes ``last.ckpt`` when training ends after the last periodic save (a run stopped by
    ``trainer.max_time`` or an early stop), so it resumes from where it stopped. Every rank
    calls it (under FSDP the save gathers)."""

    def __init__(self, out_dir) -> None:
        self.path = Path(out_dir) / "last.ckpt"

    def on_train_end(self, trainer, pl_module) -> None:
        saved = [
            getattr(cb, "_last_global_step_saved", None) for cb in trainer.checkpoint_callbacks
        ]
        if trainer.global_step > 0 and trainer.global_step not in saved:
            trainer.save_checkpoint(self.path)


class LogLine(L.Callback):
    """A readable line every ``every`` steps: step, loss, lr, tokens/s (progress-bar safe)."""

    def __init__(self, every: int) -> None:
        self.every = max(int(every), 1)
        self._t0, self._tokens = None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()
        self._tokens += batch_tokens(batch) * trainer.world_size
        step = trainer.global_step
        if (
            step % self.every
            or not trainer.is_global_zero
            or batch_idx % trainer.accumulate_grad_batches
        ):
            return
        m = trainer.callback_metrics
        dt = max(time.perf_counter() - self._t0, 1e-9)
        pl_module.print(
            f"step {step}/{trainer.max_steps}  loss {float(m.get('train/loss', float('nan'))):.4f}"
            f"  lr {trainer.optimizers[0].param_groups[0]['lr']:.2e}  tokens/s {self._tokens / dt:,.0f}"
        )
