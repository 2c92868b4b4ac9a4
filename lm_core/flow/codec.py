"""The latent codec of the flow LM: frozen encoder -> per-dim normaliser -> bottleneck; decoder.

``encode(ids) -> x``: ``h = encoder(ids)`` [B, T, d_enc] (the final normed hidden states of a
frozen lm_core masked DLM run without masks, optionally with that encoder's input embedding of
the token appended (``with_embedding``: d_enc = 2 d_model), or a token embedding trained here),
normalised per dimension ``(h - h_mean) / h_std``, projected by ``down`` to ``d_latent`` and
standardised per latent dimension ``(y - z_mean) / z_std``, so that x has roughly zero mean and
unit variance per dimension, the scale of the flow's Gaussian noise.

``decode_logits(x) -> [B, T, V]``: a linear layer (or an MLP) on standardised latents; it is used
only at the end of sampling (and for the codec's reconstruction accuracy).

Training (:func:`lm_core.train.codec.train_codec`, before the flow, then everything here is frozen): ``down`` and the
decoder (and the embedding encoder, if there is no encoder checkpoint) minimise the token
cross-entropy of ``decoder(y + noise)`` with noise ``decoder_noise * std(y)`` per dimension, so
the decoder tolerates the flow's small final errors and ``y`` cannot escape the noise by scaling
up. Afterwards ``z_mean`` / ``z_std`` are measured on training batches and folded into the
decoder's first layer, so the decoder's function of ``y`` is unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lm_core.nn.transformer import Transformer


def unpack_rows(ids: Tensor, cu_seqlens: Tensor, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """A packed row [1, T] with boundaries [N + 1] -> one segment per row: ids, valid [N, Lmax]."""
    cu = cu_seqlens.to(ids.device).long()
    lengths = cu[1:] - cu[:-1]
    L = int(lengths.max())
    col = torch.arange(L, device=ids.device)
    valid = col[None] < lengths[:, None]
    src = (cu[:-1, None] + col[None]).clamp(max=ids.shape[1] - 1)
    out = torch.where(valid, ids[0][src], torch.full_like(src, pad_id))
    return out, valid


def batch_io(batch: dict) -> tuple[Tensor, Tensor, Tensor | None, None]:
    """(ids [B, T], valid bool [B, T], attn_mask [B, 1, 1, T] or None, None).

    A packed batch (``cu_seqlens``) is unpacked to one segment per padded row, so that every row
    has its own noise level and prompt (set ``data.max_doc_len`` to the row length you want).
    """
    ids = batch["input_ids"]
    valid = batch.get("valid")
    if batch.get("cu_seqlens") is not None:
        ids, valid = unpack_rows(ids, batch["cu_seqlens"])
        return ids, valid, valid[:, None, None, :], None
    attn_mask = None if valid is None else valid[:, None, None, :]
    if valid is None:
        valid = torch.ones_like(ids, dtype=torch.bool)
    return ids, valid, attn_mask, None


class LatentCodec(nn.Module):
    """Tokens <-> standardised low-dimensional latents (see module docstring).

    Args:
        vocab_size: V, the decoder's output size.
        d_latent: bottleneck width.
        encoder: a frozen lm_core Transformer (its hidden states are the features), or None for
            a token-embedding encoder of width ``d_encoder`` trained by :func:`train_codec`.
        decoder_hidden: 0 for a linear decoder, else the hidden width of a GELU MLP.
        with_embedding: append the frozen encoder's input embedding of each token to its hidden
            state (keeps the token's identity, which a masked DLM's visible cells may drop).
    """

    def __init__(
        self,
        vocab_size: int,
        d_latent: int,
        *,
        encoder: Transformer | None = None,
        d_encoder: int = 64,
        decoder_hidden: int = 0,
        with_embedding: bool = False,
    ) -> None:
        super().__init__()
        self.vocab_size, self.d_latent = vocab_size, d_latent
        self.encoder = encoder
        self.with_embedding = bool(with_embedding and encoder is not None)
        self.embed = None if encoder is not None else nn.Embedding(vocab_size, d_encoder)
        d_enc = encoder.cfg.d_model if encoder is not None else d_encoder
        d_enc *= 2 if self.with_embedding else 1
        if encoder is not None:
            encoder.requires_grad_(False).eval()
        self.register_buffer("h_mean", torch.zeros(d_enc))
        self.register_buffer("h_std", torch.ones(d_enc))
        self.register_buffer("z_mean", torch.zeros(d_latent))
        self.register_buffer("z_std", torch.ones(d_latent))
        self.down = nn.Linear(d_enc, d_latent)
        if decoder_hidden > 0:
            self.decoder = nn.Sequential(
                nn.Linear(d_latent, decoder_hidden),
                nn.GELU(),
                nn.Linear(decoder_hidden, vocab_size),
            )
        else:
            self.decoder = nn.Sequential(nn.Linear(d_latent, vocab_size))

    @property
    def contextual(self) -> bool:
        """True when latents depend on context (an encoder Transformer), not only the token."""
        return self.encoder is not None

    def features(self, ids: Tensor, *, attn_mask=None, cu_seqlens=None, positions=None) -> Tensor:
        """ids [B, T] -> encoder features h [B, T, d_enc]."""
        if self.encoder is None:
            return self.embed(ids)
        h = self.encoder(
            ids,
            attn_mask=attn_mask,
            cu_seqlens=cu_seqlens,
            positions=positions,
            return_hidden=True,
        ).float()
        if self.with_embedding:
            h = torch.cat([h, self.encoder.tok_emb(ids).float()], dim=-1)
        return h

    def bottleneck(self, h: Tensor) -> Tensor:
        """Features h [B, T, d_enc] -> unstandardised latents y [B, T, d_latent]."""
        return self.down((h - self.h_mean) / self.h_std)

    def encode(self, ids: Tensor, **kw) -> Tensor:
        """ids [B, T] -> standardised latents x [B, T, d_latent] (keyword args go to the encoder)."""
        return (self.bottleneck(self.features(ids, **kw)) - self.z_mean) / self.z_std

    def decode_logits(self, x: Tensor) -> Tensor:
        """Standardised latents x [B, T, d_latent] -> token logits [B, T, V]."""
        return self.decoder(x)

    def decode(self, x: Tensor) -> Tensor:
        """Standardised latents x [B, T, d_latent] -> argmax token ids [B, T]."""
        return self.decode_logits(x).argmax(-1)

    def freeze(self) -> LatentCodec:
        self.requires_grad_(False)
        return self.eval()
