"""The numeric denoiser: lm_core's Transformer plus numeric embeddings and a bin head.

Layout (see ../shared/ARCHITECTURE.md): the context is cut, per channel, into patches of
``patch_size`` steps, one token each (continuous input: scaled values + observed flags + calendar
and covariate features). The horizon has one token per (time, channel) cell, time-major
(cell ``h * C + c``), holding a value bin id or MASK. Context tokens attend only among
themselves; horizon tokens attend to everything. So the context is encoded once per window
(:meth:`encode_context`) and its per-layer keys/values are reused by every sample path and every
sampling step (:meth:`horizon_logits`). RoPE positions are time steps; channels are told apart by a
learned channel embedding, so channels attend to each other and the joint over channels is modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lm_core.nn.transformer import KV, Transformer
from tsdiff.encoding import BinEncoder, context_scale, standardize, target_scale
from tsdiff.model_config import TSModelConfig


def windows_per_call(
    cfg: TSModelConfig, num_samples: int, max_tokens: int, H: int | None = None
) -> int:
    """Windows sampled together so that rows (windows x paths) x tokens per row <= max_tokens
    (at least one window); H: the horizon (default the config's)."""
    H = cfg.prediction_length if H is None else H
    tokens = (cfg.n_patches + H) * cfg.n_channels
    return max(1, max_tokens // (tokens * num_samples))


def context_stats(x: Tensor, obs: Tensor) -> tuple[Tensor, Tensor]:
    """The value scaling of a window's context, loc and scale [B, 1, K] of x [B, L, K] over its
    observed steps ``obs`` [B, L, K]: the one call of :func:`tsdiff.encoding.context_scale` in
    the package (targets, context-scaled covariates and calibration all come through here)."""
    return context_scale(x, obs)


def batch_target_scale(batch: dict) -> tuple[Tensor, Tensor]:
    """float64 loc, scale [B, 1, C] of the target channels of a window batch (windows.py shapes):
    :func:`tsdiff.encoding.target_scale` (scale 0 marks a degenerate, constant context)."""
    return target_scale(batch["ctx"], batch["ctx_obs"])


def squash(z: Tensor, z_max: float) -> Tensor:
    """asinh squashing of scaled values for network inputs (bounded, monotone)."""
    return torch.asinh(z.clamp(-z_max, z_max)) / 3.0


class NumericDenoiser(nn.Module):
    """Context patches + horizon value tokens -> logits over value bins for horizon cells."""

    def __init__(self, cfg: TSModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = BinEncoder(cfg.n_bins, cfg.z_max)
        self.backbone = Transformer(cfg.backbone())
        P, d = cfg.patch_size, cfg.d_model
        F, Cp, Cf = cfg.n_time_features, cfg.n_past_covariates, cfg.n_future_covariates
        K = len(cfg.lags)
        # per patch: values, observed flags, past covs (+ flags), future covs, calendar of each
        # step, seasonal lags (+ flags)
        patch_in = P * (2 + 2 * Cp + Cf + F + 2 * K)
        self.lag_proj = nn.Linear(2 * K, d) if K else None
        self.patch_proj = nn.Sequential(nn.Linear(patch_in, d), nn.SiLU(), nn.Linear(d, d))
        self.channel_emb = nn.Embedding(max(cfg.n_channels, 1), d)
        self.step_proj = nn.Linear(F + Cf, d) if F + Cf > 0 else None
        self.static_proj = nn.Linear(cfg.n_static_real, d) if cfg.n_static_real > 0 else None
        self.cat_emb = nn.ModuleList(nn.Embedding(max(n, 1), d) for n in cfg.static_cardinalities)
        self.global_cov = cfg.covariate_scaling == "global"
        n_stats = 2 * (cfg.n_channels + (0 if self.global_cov else Cp + Cf))
        self.scale_proj = nn.Linear(n_stats, d) if cfg.scale_features else None
        for name, st in (("pcov", cfg.past_cov_stats), ("fcov", cfg.future_cov_stats)):
            st_t = torch.tensor(st, dtype=torch.float32).reshape(-1, 2)
            self.register_buffer(f"{name}_loc", st_t[:, 0], persistent=False)
            self.register_buffer(f"{name}_scale", st_t[:, 1], persistent=False)
        self.head = nn.Linear(d, cfg.n_bins if cfg.mode == "masked" else 1)
        self.value_in = nn.Linear(1, d) if cfg.mode == "flow" else None
        nn.init.normal_(self.channel_emb.weight, std=0.02)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    # ----------------------------------------------------------------- scaling
    def scale_batch(self, batch: dict) -> dict:
        """Adds loc/scale [B, 1, C] (float64, :func:`tsdiff.encoding.target_scale`) from the
        context, scaled fields z_ctx, z_fut (float32), z_* covs, fut_obs without the horizons of
        degenerate (constant-context) channels, and,
        with ``scale_features``, ``scale_stats`` [B, 2 * (C + Cp + Cf)] (asinh loc, log scale of
        every channel; only of the targets when covariates are scaled globally)."""
        # targets: float64 loc/scale (scale 0: degenerate context), z cast to float32 for the net
        loc, scale = batch_target_scale(batch)
        out = dict(batch, loc=loc, scale=scale)
        out["z_ctx"] = (standardize(batch["ctx"], loc, scale) * batch["ctx_obs"]).float()
        if "fut" in batch:
            out["z_fut"] = standardize(batch["fut"], loc, scale).float()
        if "fut_obs" in batch:  # a degenerate channel's horizon is not learnable scale-free
            out["fut_obs"] = batch["fut_obs"] & (scale > 0)
        if self.lag_proj is not None:  # seasonal lags [B, T, C, K] -> inputs [B, T, C, 2K]
            for key in ("lag_ctx", "lag_fut"):  # scaled like the target, squashed, with flags
                z = standardize(batch[key].movedim(-1, 1), loc[:, None], scale[:, None])
                obs = batch[key + "_obs"]
                z = squash((z.movedim(1, -1) * obs).float(), self.cfg.z_max)
                out["in_" + key] = torch.cat([z, obs.float()], -1)
        # absolute-level features (scale_features) keep the floored statistics of the targets
        stats = []
        if self.scale_proj is not None:
            stats.append(context_scale(batch["ctx"].float(), batch["ctx_obs"]))
        for key, obs in (("pcov_ctx", "pcov_obs"),):
            if batch[key].shape[-1] > 0 and self.global_cov:
                x = torch.nan_to_num(batch[key])
                out["z_" + key] = ((x - self.pcov_loc) / self.pcov_scale) * batch[obs]
            elif batch[key].shape[-1] > 0:
                cl, cs = context_stats(batch[key], batch[obs])
                out["z_" + key] = ((batch[key] - cl) / cs) * batch[obs]
                stats.append((cl, cs))
            else:
                out["z_" + key] = batch[key]
        if batch["fcov_ctx"].shape[-1] > 0 and self.global_cov:
            out["z_fcov_ctx"] = (batch["fcov_ctx"] - self.fcov_loc) / self.fcov_scale
            out["z_fcov_fut"] = (batch["fcov_fut"] - self.fcov_loc) / self.fcov_scale
        elif batch["fcov_ctx"].shape[-1] > 0:
            ones = torch.ones_like(batch["fcov_ctx"], dtype=torch.bool)
            cl, cs = context_stats(batch["fcov_ctx"], ones)
            out["z_fcov_ctx"] = (batch["fcov_ctx"] - cl) / cs
            out["z_fcov_fut"] = (batch["fcov_fut"] - cl) / cs
            stats.append((cl, cs))
        else:
            out["z_fcov_ctx"], out["z_fcov_fut"] = batch["fcov_ctx"], batch["fcov_fut"]
        if self.scale_proj is not None:  # only the scale-features model reads them
            out["scale_stats"] = torch.cat(
                [torch.cat([torch.asinh(lo), torch.log(sc)], -1)[:, 0] for lo, sc in stats], -1
            )
        return out

    # ----------------------------------------------------------------- context
    def _patches(self, x: Tensor) -> Tensor:
        """[B, L, K] -> [B, n_patches, P * K], left-padding L to a multiple of P with zeros."""
        B, L, K = x.shape
        P, N = self.cfg.patch_size, self.cfg.n_patches
        pad = N * P - L
        if pad:
            x = torch.cat([x.new_zeros(B, pad, K), x], dim=1)
        return x.reshape(B, N, P * K)

    def context_tokens(self, s: dict) -> tuple[Tensor, Tensor]:
        """Context token embeddings [B, C * N, d] (channel-major) and positions [B, C * N]."""
        z = squash(s["z_ctx"], self.cfg.z_max)
        B, L, C = z.shape
        shared = torch.cat(
            [
                squash(s["z_pcov_ctx"], self.cfg.z_max),
                s["pcov_obs"].to(z.dtype),
                squash(s["z_fcov_ctx"], self.cfg.z_max),
                s["tf_ctx"],
            ],
            dim=-1,
        )  # [B, L, K]
        tokens = []
        for c in range(C):
            own = [z[..., c : c + 1], s["ctx_obs"][..., c : c + 1].to(z.dtype), shared]
            if self.lag_proj is not None:
                own.append(s["in_lag_ctx"][:, :, c])
            feats = torch.cat(own, -1)
            emb = self.patch_proj(self._patches(feats)) + self.channel_emb.weight[c]
            tokens.append(emb)
        emb = torch.cat(tokens, dim=1)
        emb = emb + self.static_embedding(s)[:, None]
        P, N = self.cfg.patch_size, self.cfg.n_patches
        pos = torch.arange(N, device=z.device) * P + (P - 1) - (N * P - L)
        pos = pos.repeat(C)[None].expand(B, -1)
        return emb, pos

    def encode_context(self, s: dict) -> list[KV]:
        """Per-layer keys/values of the context tokens: list of ([B, C*N, Hkv, D], same)."""
        emb, pos = self.context_tokens(s)
        t = emb.new_zeros(emb.shape[0]) if self.cfg.mode == "flow" else None  # context is clean
        _, kvs = self.backbone(
            inputs_embeds=emb, positions=pos, t=t, return_kv=True, return_hidden=True
        )
        return kvs

    # ----------------------------------------------------------------- horizon
    def horizon_static(self, s: dict) -> Tensor:
        """Token-independent part of horizon embeddings: [B, H * C, d] (channel + step features);
        H is the batch's (``tf_fut`` [B, H, F]): the weights do not depend on the horizon, so one
        model serves any H (a pretrained base, tsdiff.pretrained)."""
        H, C = s["tf_fut"].shape[1], self.cfg.n_channels
        emb = self.channel_emb.weight[:C].repeat(H, 1)[None]  # [1, H*C, d]
        B = s["tf_fut"].shape[0]
        emb = emb.expand(B, -1, -1)
        if self.step_proj is not None:
            step = self.step_proj(
                torch.cat([s["tf_fut"], squash(s["z_fcov_fut"], self.cfg.z_max)], -1)
            )
            emb = emb + step.repeat_interleave(C, dim=1)
        if self.lag_proj is not None:  # per cell, time-major (h * C + c)
            emb = emb + self.lag_proj(s["in_lag_fut"].flatten(1, 2))
        return emb + self.static_embedding(s)[:, None]

    def static_embedding(self, s: dict) -> Tensor:
        """Per-item embedding [B, d] of static real and categorical covariates (0 if none)."""
        B = s["tf_ctx"].shape[0]
        out = self.channel_emb.weight.new_zeros(B, self.cfg.d_model)
        if self.static_proj is not None:
            out = out + self.static_proj(s["static_real"])
        if self.scale_proj is not None:
            out = out + self.scale_proj(s["scale_stats"])
        for j, emb in enumerate(self.cat_emb):
            out = out + emb(s["static_cat"][:, j])
        return out

    def horizon_positions(self, B: int, device, H: int | None = None) -> Tensor:
        """[B, H * C] RoPE positions of the horizon cells (L + h); H default: the config's."""
        H = self.cfg.prediction_length if H is None else H
        C, L = self.cfg.n_channels, self.cfg.context_length
        return (L + torch.arange(H, device=device)).repeat_interleave(C)[None].expand(B, -1)

    def horizon_logits(
        self, tokens: Tensor, static_emb: Tensor, kvs: list[KV], positions: Tensor
    ) -> Tensor:
        """tokens [B, H*C] (bin ids or MASK) -> logits [B, H*C, n_bins]."""
        x = self.backbone.tok_emb(tokens) + static_emb
        h = self.backbone(inputs_embeds=x, positions=positions, kv_prefix=kvs, return_hidden=True)
        return self.head(h).float()

    def horizon_xpred(
        self, z_t: Tensor, t: Tensor, static_emb: Tensor, kvs: list[KV], positions: Tensor
    ) -> Tensor:
        """Flow mode: noisy squashed values z_t [B, H*C] at noise level t [B] -> clean x [B, H*C]."""
        x = self.value_in(z_t[..., None].to(static_emb.dtype)) + static_emb
        h = self.backbone(
            inputs_embeds=x, positions=positions, t=t, kv_prefix=kvs, return_hidden=True
        )
        return self.head(h).float().squeeze(-1)

    @staticmethod
    def repeat_kv(kvs: list[KV], n: int) -> list[KV]:
        """Repeat each window's cached context n times (sample paths): [B, ...] -> [B*n, ...]."""
        return [(k.repeat_interleave(n, 0), v.repeat_interleave(n, 0)) for k, v in kvs]

    def horizon(self, batch: dict) -> Horizon:
        """The horizon set-up of a batch of B windows, shared by every loss and sampler:
        scale the batch, encode the context once, embed the horizon cells."""
        s = self.scale_batch(batch)
        kvs = self.encode_context(s)
        static = self.horizon_static(s)
        B = static.shape[0]
        H = static.shape[1] // self.cfg.n_channels
        return Horizon(self, s, kvs, static, self.horizon_positions(B, static.device, H))

    def target_tokens(self, s: dict) -> tuple[Tensor, Tensor]:
        """Horizon bin ids [B, H*C] (MASK where unobserved) and observed mask [B, H*C]."""
        ids = self.encoder.encode(s["z_fut"]).flatten(1)
        obs = s["fut_obs"].flatten(1)
        return torch.where(obs, ids, torch.full_like(ids, self.encoder.mask_id)), obs


@dataclass
class PathRows:
    """The rows of one sampler call: w windows of a :class:`Horizon`, each repeated for its S
    paths (window-major, n = w * S rows)."""

    kvs1: list[KV]
    """Cached context of the w windows, one row each: per layer ([w, C*N, Hkv, D], same)."""
    static1: Tensor
    """[w, H*C, d] horizon embeddings, one row per window."""
    kvs: list[KV]
    """The context repeated per path: per layer ([n, C*N, Hkv, D], same)."""
    static: Tensor
    """[n, H*C, d] horizon embeddings, repeated per path."""
    positions: Tensor
    """[n, H*C] RoPE positions of the horizon cells."""
    num_samples: int
    """S, paths per window."""


@dataclass
class Horizon:
    """A batch of B windows made ready for the horizon: :meth:`NumericDenoiser.horizon`."""

    model: NumericDenoiser
    scaled: dict
    """The batch with loc/scale [B, 1, C] and scaled fields (:meth:`NumericDenoiser.scale_batch`)."""
    kvs: list[KV]
    """Per-layer keys/values of the context tokens ([B, C*N, Hkv, D], same)."""
    static: Tensor
    """[B, H*C, d] token-independent horizon embeddings."""
    positions: Tensor
    """[B, H*C] RoPE positions of the horizon cells."""

    @property
    def windows(self) -> int:
        return self.static.shape[0]

    def chunks(self, num_samples: int, max_tokens: int):
        """Yield (b0, b1, :class:`PathRows`) for windows b0:b1, as many per call as keep
        rows x tokens within ``max_tokens`` (:func:`windows_per_call`)."""
        H = self.static.shape[1] // self.model.cfg.n_channels
        per_chunk = windows_per_call(self.model.cfg, num_samples, max_tokens, H)
        for b0 in range(0, self.windows, per_chunk):
            b1 = min(self.windows, b0 + per_chunk)
            kv1 = [(k[b0:b1], v[b0:b1]) for k, v in self.kvs]
            st1 = self.static[b0:b1]
            st = st1.repeat_interleave(num_samples, 0)
            yield (
                b0,
                b1,
                PathRows(
                    kvs1=kv1,
                    static1=st1,
                    kvs=self.model.repeat_kv(kv1, num_samples),
                    static=st,
                    positions=self.positions[b0:b1].repeat_interleave(num_samples, 0),
                    num_samples=num_samples,
                ),
            )

    def to_data_units(self, z: Tensor) -> Tensor:
        """z [B, S, H, C] in context-scaled units -> data units [B, S, H, C] (float64) inside the
        model's domain (:meth:`tsdiff.encoding.BinEncoder.to_data_units`); a channel-independent
        model (more domain channels than C) takes each row's channel from its last category."""
        m, s = self.model, self.scaled
        channel = s["static_cat"][:, -1] if len(m.cfg.domain) > m.cfg.n_channels else None
        return m.encoder.to_data_units(z, s["loc"], s["scale"], m.cfg.domain, channel)
