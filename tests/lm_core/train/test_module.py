"""DiffusionLM (thin LightningModule), WSD schedule, EMA and exact resume on synthetic data."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from lm_core.config import ModelConfig, ObjectiveConfig, OptimConfig
from lm_core.schedule import EMA, WSDMultiplier, wsd_scheduler
from lm_core.train.callbacks import ResumableLoader
from lm_core.train.module import DiffusionLM

MASK = 31


def tiny_cfg(**kw) -> ModelConfig:
    base = dict(vocab_size=32, d_model=32, n_layers=2, n_heads=2, max_seq_len=64)
    return ModelConfig(**{**base, **kw})


def periodic_docs(n: int, length: int = 24, seed: int = 0) -> list[dict]:
    """Padded examples {"input_ids": [L], "valid": [L]} holding a repeated random motif."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        motif = torch.randint(0, 8, (4,), generator=g)
        ids = motif.repeat(length // 4)
        n_valid = int(torch.randint(length // 2, length + 1, (1,), generator=g))
        valid = torch.arange(length) < n_valid
        out.append({"input_ids": torch.where(valid, ids, 0), "valid": valid})
    return out


class SyntheticData(L.LightningDataModule):
    def __init__(self, n_train: int = 6, batch_size: int = 2) -> None:
        super().__init__()
        self.train, self.val = periodic_docs(n_train), periodic_docs(4, seed=1)
        self.batch_size = batch_size

    def train_dataloader(self):
        dl = DataLoader(self.train, batch_size=self.batch_size, shuffle=True)
        return ResumableLoader(dl, self.trainer, seed=0)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=2)


def make_trainer(tmp_path, max_steps: int, callbacks=(), **kw) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps,
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
        **{"limit_val_batches": 0, **kw},
    )


def make_module(kind: str = "masked", **optim) -> DiffusionLM:
    optim = {"lr": 3e-3, "warmup_steps": 2, **optim}
    return DiffusionLM(
        tiny_cfg(causal=kind == "ar"),
        ObjectiveConfig(kind=kind),
        OptimConfig(**optim),
        max_steps=8,
        mask_id=MASK,
    )


def test_wsd_shape():
    f = WSDMultiplier(max_steps=100, warmup_steps=10, decay_fraction=0.2, min_lr_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5)
    assert all(f(s) == 1.0 for s in range(9, 80))
    assert f(90) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(100) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    decay = [f(s) for s in range(80, 101)]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))


def test_wsd_follows_the_time_budget_when_it_runs_out_first():
    f = WSDMultiplier(max_steps=1000, warmup_steps=10, decay_fraction=0.3, min_lr_ratio=0.05)
    assert f(20) == 1.0  # 2 % of the steps, no time information: stable phase
    f.time_fraction = 0.85  # the wall-clock budget is 85 % spent: halfway through the decay
    assert f(20) == pytest.approx(0.05 + 0.95 * 0.5)
    f.time_fraction = 1.0
    assert f(20) == pytest.approx(0.05)
    f.time_fraction = 0.1  # steps ahead of time: the step count decides
    assert f(1000) == pytest.approx(0.05)


def test_wsd_scheduler_state_is_plain():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = wsd_scheduler(opt, max_steps=10, warmup_steps=0, decay_fraction=0.5, min_lr_ratio=0.0)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    state = sched.state_dict()
    assert state["lr_lambdas"][0]["max_steps"] == 10


def test_ema_average_and_swap():
    lin = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema = EMA(lin, decay=0.5)
    ema.num_updates = 100  # past the warm-up of the decay
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema.update(lin)
    assert torch.allclose(ema.shadow["weight"], torch.full((2, 2), 0.5))
    with ema.swapped(lin):
        assert torch.allclose(lin.weight, torch.full((2, 2), 0.5))
    assert torch.allclose(lin.weight, torch.ones(2, 2))


def test_no_weight_decay_on_norms_and_embeddings():
    m = make_module()
    groups = m.configure_optimizers()["optimizer"].param_groups
    ids = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert ids[id(m.net.tok_emb.weight)] == 0.0
    assert ids[id(m.net.blocks[0].attn_norm.weight)] == 0.0
    assert ids[id(m.net.blocks[0].attn.q_proj.weight)] == pytest.approx(0.1)
    assert len(ids) == len(list(m.parameters()))


def test_objective_model_mismatch_is_an_error():
    with pytest.raises(ValueError, match="causal"):
        DiffusionLM(tiny_cfg(), ObjectiveConfig(kind="ar"), OptimConfig(), max_steps=4)
    with pytest.raises(ValueError, match="mask_id"):
        DiffusionLM(tiny_cfg(), ObjectiveConfig(), OptimConfig(), max_steps=4)


@pytest.mark.learning
@pytest.mark.parametrize("kind", ["masked", "ar"])
def test_learns_and_validates(tmp_path, kind):
    L.seed_everything(0, verbose=False)
    m = DiffusionLM(
        tiny_cfg(causal=kind == "ar"),
        ObjectiveConfig(kind=kind),
        OptimConfig(lr=1e-2, warmup_steps=5, ema_decay=0.9),
        max_steps=60,
        mask_id=MASK,
    )
    data = SyntheticData(n_train=16, batch_size=4)
    trainer = make_trainer(tmp_path, 60, limit_val_batches=1.0)
    trainer.validate(m, datamodule=data, verbose=False)
    before = float(trainer.callback_metrics["val/loss"])
    trainer.fit(m, datamodule=data)
    trainer.validate(m, datamodule=data, verbose=False)
    after = trainer.callback_metrics
    assert float(after["val/loss"]) < before - 0.5, (before, float(after["val/loss"]))
    name = "val/ppl_bound" if kind == "masked" else "val/ppl"
    assert float(after[name]) == pytest.approx(math.exp(float(after["val/loss"])), rel=1e-4)
    assert float(after["val/bits_per_token"]) == pytest.approx(
        float(after["val/loss"]) / math.log(2)
    )


class _Kill(L.Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("simulated crash")


def _train(tmp_path, seed, max_steps=8, ckpt=None, kill=None, ema=0.0):
    L.seed_everything(seed, verbose=False)
    m = make_module(ema_decay=ema)
    cbs = [ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0, every_n_train_steps=4)]
    if kill is not None:
        cbs.append(_Kill(kill))
    trainer = make_trainer(tmp_path, max_steps, cbs)
    trainer.fit(m, datamodule=SyntheticData(), ckpt_path=ckpt, weights_only=True)
    return trainer, m


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_killed_run_resumes_exactly(tmp_path, ema):
    _, full = _train(tmp_path / "full", seed=0, ema=ema)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tmp_path / "run", seed=0, kill=5, ema=ema)
    last = tmp_path / "run" / "last.ckpt"
    assert last.is_file()
    assert torch.load(last, weights_only=True)["global_step"] == 4
    # a different seed at restart: everything that matters must come from the checkpoint
    trainer, resumed = _train(tmp_path / "run", seed=123, ckpt=str(last), ema=ema)
    assert trainer.global_step == 8
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    if ema:
        for k, v in full.ema.shadow.items():
            torch.testing.assert_close(v, resumed.ema.shadow[k], rtol=0, atol=1e-6)
