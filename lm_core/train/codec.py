"""The flow LM's codec stage: fit the codec's bottleneck and decoder, then freeze it.

Runs before the flow denoiser's training (:func:`lm_core.train.flow.build_flow_module`), through
a Lightning ``Trainer`` of its own (:class:`CodecStage`: AdamW, no schedule, no clipping, no
logger, checkpoint or export: the trained codec is saved inside the flow run's ``last.ckpt`` and
exports). Its batches come from one stream of the training loader that also gives the
normaliser statistics measured before and after the steps (folded into the frozen decoder, see
:mod:`lm_core.flow.codec`).
"""

from __future__ import annotations

import itertools

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from lm_core.flow.codec import LatentCodec, batch_io


class CodecStage(L.LightningModule):
    """The codec's training step: token cross-entropy of ``decoder(y + noise)``.

    ``y = bottleneck(features(ids))`` [B, T, d_latent] and the noise is ``noise`` times the
    batch's per-dimension std of y (drawn from ``generator``). The frozen encoder (if any) gets
    no gradient; the bottleneck, the decoder and an embedding encoder are optimised by AdamW.
    """

    def __init__(self, codec: LatentCodec, *, lr: float, noise: float, generator) -> None:
        super().__init__()
        self.codec, self.lr, self.noise, self.generator = codec, lr, noise, generator
        self.last_ce = torch.tensor(float("nan"))

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        codec = self.codec
        ids, valid, attn, cu = batch_io(batch)
        with torch.set_grad_enabled(codec.encoder is None):  # the encoder stays frozen
            h = codec.features(ids, attn_mask=attn, cu_seqlens=cu)
        y = codec.bottleneck(h)
        sd = y[valid].detach().std(0).clamp(min=1e-4)
        y = y + self.noise * sd * torch.randn(y.shape, generator=self.generator, device=y.device)
        ce = F.cross_entropy(codec.decoder(y)[valid], ids[valid])
        self.last_ce = ce.detach()
        return ce

    def configure_optimizers(self):
        params = [p for n, p in self.codec.named_parameters() if not n.startswith("encoder.")]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)


class _Take(IterableDataset):
    """The next ``n`` items of a shared iterator (never one more: the Trainer reads ahead)."""

    def __init__(self, it, n: int) -> None:
        self.it, self.n = it, n

    def __iter__(self):
        for _ in range(self.n):
            yield next(self.it)


def _cycle(loader):
    while True:
        yield from loader


@torch.no_grad()
def _feature_stats(codec: LatentCodec, batches, n: int, fn) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and std of ``fn(codec, batch)`` [N, d] over n batches (valid cells)."""
    rows = []
    for batch in itertools.islice(batches, n):
        ids, valid, attn, cu = batch_io(batch)
        rows.append(fn(codec, ids, attn, cu)[valid].float())
    allr = torch.cat(rows)
    return allr.mean(0), allr.std(0).clamp(min=1e-4)


def train_codec(
    codec: LatentCodec,
    loader,
    *,
    steps: int,
    lr: float = 3e-3,
    noise: float = 0.2,
    stat_batches: int = 8,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict:
    """Fit the bottleneck and decoder (and embedding encoder) on ``loader``'s batches, then freeze.

    Returns stats {"ce", "acc"}: the last step's cross-entropy and the token accuracy of
    ``decode(encode(ids))`` on ``stat_batches`` batches after freezing (noise-free round trip).
    """
    codec.to(device)
    batches = (
        {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in b.items()}
        for b in _cycle(loader)
    )
    if codec.encoder is not None:
        feats = lambda c, i, a, cu: c.features(i, attn_mask=a, cu_seqlens=cu)  # noqa: E731
        codec.h_mean, codec.h_std = _feature_stats(codec, batches, stat_batches, feats)
    g = torch.Generator(device=device).manual_seed(seed)
    stage = CodecStage(codec, lr=lr, noise=noise, generator=g)
    trainer = L.Trainer(
        max_steps=steps, accelerator="cuda" if str(device).startswith("cuda") else "cpu",
        devices=1, precision="32-true", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    # its own generator for the loader's base seed, so the global RNG (which initialises the
    # flow denoiser next) is not drawn from
    stream = DataLoader(_Take(batches, steps), batch_size=None, generator=torch.Generator())
    trainer.fit(stage, train_dataloaders=stream)
    ce = stage.last_ce
    codec.freeze()
    ys = lambda c, i, a, cu: c.bottleneck(c.features(i, attn_mask=a, cu_seqlens=cu))  # noqa: E731
    mean, std = _feature_stats(codec, batches, stat_batches, ys)
    with torch.no_grad():  # decoder(y) == decoder'((y - mean) / std): fold into the first layer
        first = codec.decoder[0]
        first.bias += first.weight @ mean
        first.weight *= std[None, :]
    codec.z_mean.copy_(mean)
    codec.z_std.copy_(std)
    return {"ce": float(ce.detach()), "acc": codec_accuracy(codec, batches, stat_batches)}


@torch.no_grad()
def codec_accuracy(codec: LatentCodec, batches, n: int) -> float:
    """Token accuracy of ``decode(encode(ids))`` over n batches of valid cells."""
    hit = tot = 0
    for batch in itertools.islice(batches, n):
        ids, valid, attn, cu = batch_io(batch)
        pred = codec.decode(codec.encode(ids, attn_mask=attn, cu_seqlens=cu))
        hit += int((pred == ids)[valid].sum())
        tot += int(valid.sum())
    return hit / max(tot, 1)
