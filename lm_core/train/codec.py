"""The flow LM's codec stage: fit the codec's bottleneck and decoder, then freeze it.

Runs before the flow denoiser's Lightning training (:func:`lm_core.train.flow.build_flow_module`)
as a plain optimiser loop, not through the Trainer: it is short (``codec_steps``), has no
validation, export or resume of its own (a resumed flow run finds the trained codec in
``last.ckpt``), and it measures normaliser statistics on the same stream of batches before and
after the steps, which it folds into the frozen decoder (see :mod:`lm_core.flow.codec`).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_core.flow.codec import LatentCodec, batch_io


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
    params = [p for n, p in codec.named_parameters() if not n.startswith("encoder.")]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    g = torch.Generator(device=device).manual_seed(seed)
    ce = torch.tensor(float("nan"))
    codec.train()
    for _ in range(steps):
        ids, valid, attn, cu = batch_io(next(batches))
        with torch.set_grad_enabled(codec.encoder is None):  # the encoder stays frozen
            h = codec.features(ids, attn_mask=attn, cu_seqlens=cu)
        y = codec.bottleneck(h)
        sd = y[valid].detach().std(0).clamp(min=1e-4)
        y = y + noise * sd * torch.randn(y.shape, generator=g, device=y.device)
        ce = F.cross_entropy(codec.decoder(y)[valid], ids[valid])
        opt.zero_grad(set_to_none=True)
        ce.backward()
        opt.step()
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
