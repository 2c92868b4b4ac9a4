"""The boundary between numbers and the token denoiser (as in Chronos).

Two steps, both per series and per channel:

1. **Scaling** of the targets from the context only (:func:`target_scale`):
   ``z = (y - loc) / scale`` with ``loc`` the mean and ``scale`` the standard deviation of the
   observed context values, both in float64, and ``z`` cast to float32 only for the network.
   The rule has no absolute floor, so it is **affine-equivariant**: the context ``a * y + b``
   (``a > 0``) gets ``a * loc + b`` and ``a * scale``, hence the same ``z``, the same network
   input and (same random numbers) the same paths in ``z``; decoding ``z * scale + loc`` in
   float64 then gives ``a`` times the forecast of ``y``, plus ``b``, for any magnitude (float32
   would lose a translation ``b`` of 1e6 spreads: its eps 1.2e-7 x 1e6 is 0.12 spread). A context
   whose standard deviation is at most ``REL_TOL`` (1e-12) of its level ``|loc|`` (a constant or
   single-point context; float64 rounding of a constant stays near 1e-16) is **degenerate**:
   ``scale = 0``, its ``z`` is 0 and every decoded path equals ``loc``, the only answer an
   affine-equivariant forecaster can give (``y -> a (y - c) + c`` leaves a constant context ``c``
   unchanged for every ``a``). Training leaves a degenerate channel's horizon out of the loss.
   Covariates keep :func:`context_scale` (floored; they are network inputs only, never decoded).
2. **Value tokens** (masked mode): ``z`` is clipped to ``[-z_max, z_max]`` and binned uniformly in
   ``asinh`` space, which gives fine bins near the context's typical range and coarse bins in the
   tails (uniform bins over a clipped range, as in Chronos, waste most bins on rare values; plain
   asinh-uniform bins keep about 70 % of bins within +-3 standard deviations at the default
   settings). Decoding draws uniformly within the bin (in asinh space), so samples are continuous,
   not lattice-valued.
3. **Domains** (:func:`resolve_domain`, :func:`to_domain`): per target channel an optional lower
   and upper bound in data units, resolved at fit (``auto``: non-negative when every observed
   training value is) and kept in the model's config. Decoding censors at them: a path value
   beyond a bound lands exactly on it, so no sample leaves the domain. Where the data sits on a
   bound (at least ``ATOM_SHARE`` of the training values exactly on it: zeros at night, zero
   counts, 100 % humidity) the bound is an **atom**: the whole value bin that holds the bound (in
   each window's z units) decodes to the bound itself, not to a value jittered within the bin,
   so exact zeros come out where the model puts the bound's bin. The bias this costs a positive
   value is at most the width of that one bin (about 0.03 context standard deviations near the
   context's level at the default 256 bins); a bound that is not an atom is only censored.

Shapes: values ``[..., L, C]`` with the statistics ``[..., 1, C]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def context_scale(
    values: Tensor, observed: Tensor, min_scale: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """Mean and safe standard deviation of the observed context, floored for covariates.

    ``scale = max(std, 1e-2 * mean|y|, min_scale)``: never zero, but not affine-equivariant (the
    targets use :func:`target_scale`); covariates are network inputs only, so a floor is harmless.

    Args:
        values: [B, L, C] context values (NaN allowed where unobserved).
        observed: bool [B, L, C].

    Returns:
        loc, scale: [B, 1, C] each; a channel with no observed value gets loc 0, scale 1.
    """
    obs = observed.to(values.dtype)
    v = torch.where(observed, values, torch.zeros_like(values))
    n = obs.sum(dim=-2, keepdim=True)
    loc = v.sum(dim=-2, keepdim=True) / n.clamp(min=1)
    var = ((v - loc) ** 2 * obs).sum(dim=-2, keepdim=True) / n.clamp(min=1)
    mean_abs = (v.abs() * obs).sum(dim=-2, keepdim=True) / n.clamp(min=1)
    scale = torch.maximum(var.sqrt(), 1e-2 * mean_abs).clamp(min=min_scale)
    none = n == 0
    loc = torch.where(none, torch.zeros_like(loc), loc)
    scale = torch.where(none, torch.ones_like(scale), scale)
    return loc, scale


REL_TOL = 1e-12
"""A context is degenerate (constant) when its standard deviation is at most ``REL_TOL * |loc|``."""


def target_scale(
    values: Tensor, observed: Tensor, rel_tol: float = REL_TOL
) -> tuple[Tensor, Tensor]:
    """Affine-equivariant mean and standard deviation of the observed context, in float64.

    ``loc`` is the mean (with one correction pass, so a level of 1e6 spreads keeps its digits),
    ``scale`` the (population) standard deviation, computed relative to the largest deviation so
    that no square under- or overflows (1e-300 or 1e300 keep their spread); no absolute floor.
    A degenerate context (``scale <= rel_tol * |loc|``: constant, or a single observed point)
    gets ``scale = 0``: :func:`standardize` maps it to z = 0 and ``z * scale + loc`` decodes
    every path to ``loc``.

    Args:
        values: [B, L, C] context values (any float dtype; unobserved cells are ignored, NaN too).
        observed: bool [B, L, C].

    Returns:
        loc, scale: [B, 1, C] float64 each; a channel with no observed value gets loc 0, scale 1.
    """
    v = torch.where(observed, values.double(), torch.zeros((), dtype=torch.float64))
    obs = observed.to(torch.float64)
    n = obs.sum(dim=-2, keepdim=True).clamp(min=1)
    loc = v.sum(dim=-2, keepdim=True) / n
    loc = loc + ((v - loc) * obs).sum(dim=-2, keepdim=True) / n  # correction: sum(v - loc) ~ 0
    dev = (v - loc) * obs
    big = dev.abs().amax(dim=-2, keepdim=True)  # std of dev / big: no square under/overflows
    unit = dev / torch.where(big > 0, big, torch.ones_like(big))
    scale = big * ((unit**2).sum(dim=-2, keepdim=True) / n).sqrt()
    scale = torch.where(scale <= rel_tol * loc.abs(), torch.zeros_like(scale), scale)
    none = observed.sum(dim=-2, keepdim=True) == 0
    loc = torch.where(none, torch.zeros_like(loc), loc)
    scale = torch.where(none, torch.ones_like(scale), scale)
    return loc, scale


def standardize(values: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """``(values - loc) / scale`` in float64, 0 where ``scale == 0`` (degenerate context).

    values: [..., T, C]; loc, scale: [..., 1, C] (from :func:`target_scale`). Returns float64
    [..., T, C]; cast to float32 only after this subtraction and division.
    """
    ok = scale > 0
    z = (values.double() - loc) / torch.where(ok, scale, torch.ones_like(scale))
    return torch.where(ok, z, torch.zeros_like(z))


@dataclass
class BinEncoder:
    """Uniform bins in asinh space over ``[-z_max, z_max]`` of scaled values.

    ``n_bins`` value tokens have ids ``0 .. n_bins - 1``; ``mask_id = n_bins`` is the hidden cell.
    """

    n_bins: int = 256
    z_max: float = 20.0

    def __post_init__(self) -> None:
        if self.n_bins < 2:
            raise ValueError(f"n_bins: expected at least 2, got {self.n_bins}")
        if self.z_max <= 0:
            raise ValueError(f"z_max: expected a positive number, got {self.z_max}")
        self.u_max = math.asinh(self.z_max)

    @property
    def mask_id(self) -> int:
        return self.n_bins

    @property
    def vocab_size(self) -> int:
        """Bins plus the mask token."""
        return self.n_bins + 1

    def encode(self, z: Tensor) -> Tensor:
        """Scaled values z [...] -> bin ids [...] (long); values beyond +-z_max go to the end bins."""
        u = torch.asinh(z.clamp(-self.z_max, self.z_max)) / self.u_max  # in [-1, 1]
        idx = ((u + 1.0) * 0.5 * self.n_bins).floor().long()
        return idx.clamp(0, self.n_bins - 1)

    def bin_edges(self, device=None) -> Tensor:
        """Bin edges in z: [n_bins + 1]."""
        u = torch.linspace(-1.0, 1.0, self.n_bins + 1, device=device)
        return torch.sinh(u * self.u_max)

    def bin_edges_of(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Lower and upper edge (float64, z units) of the bin that holds each z [...]."""
        ids = self.encode(z.double()).double()
        u0 = ids / self.n_bins * 2.0 - 1.0
        u1 = (ids + 1.0) / self.n_bins * 2.0 - 1.0
        return torch.sinh(u0 * self.u_max), torch.sinh(u1 * self.u_max)

    def decode(self, ids: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Bin ids [...] -> scaled values z [...], drawn uniformly (in asinh space) within the bin."""
        jitter = torch.rand(ids.shape, device=ids.device, generator=generator)
        u = (ids.float() + jitter) / self.n_bins * 2.0 - 1.0
        return torch.sinh(u * self.u_max)

    def to_data_units(
        self, z: Tensor, loc: Tensor, scale: Tensor, domain: list[dict], channel=None
    ) -> Tensor:
        """Paths z [B, S, H, C] -> data units inside ``domain`` (:func:`to_domain`)."""
        return to_domain(z, loc, scale, domain, self, channel)

    def centers(self, device=None) -> Tensor:
        """Bin centres in z: [n_bins] (used for means from logits)."""
        u = (torch.arange(self.n_bins, device=device).float() + 0.5) / self.n_bins * 2.0 - 1.0
        return torch.sinh(u * self.u_max)


# ---------------------------------------------------------------------------- domains
DOMAINS = ("auto", "real", "nonnegative")
"""The named domains: ``auto`` (non-negative when every observed training value is, else real),
``real`` (no bounds) and ``nonnegative`` (lower bound 0)."""
ATOM_SHARE = 0.01
"""A bound is an atom of a channel when at least this share of its observed training values sit
exactly on it; the value bin holding an atom decodes to the bound itself."""
DOMAIN_HELP = "'auto', 'real', 'nonnegative' or a dict of channel -> [lower, upper] or name"


def channel_domain(name, value) -> str | tuple[float | None, float | None]:
    """One channel's entry of a ``domain`` dict: a name of ``DOMAINS`` or ``(lower, upper)``,
    each a finite number or None (unbounded), lower < upper. One-line ValueError otherwise."""
    where = f"domain[{name!r}]"
    if not isinstance(name, str):
        raise ValueError(f"domain: channel names must be strings, got {name!r}")
    if isinstance(value, str):
        if value not in DOMAINS:
            raise ValueError(f"{where}: expected one of {DOMAINS} or [lower, upper], got {value!r}")
        return value
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"{where}: expected [lower, upper] (a number or null each), got {value!r}")
    for b in value:
        ok = b is None or (isinstance(b, int | float) and not isinstance(b, bool))
        if not ok or (b is not None and not math.isfinite(b)):
            raise ValueError(f"{where}: bounds must be finite numbers or null, got {value!r}")
    lo, hi = value
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"{where}: expected lower < upper, got {value!r}")
    return (None if lo is None else float(lo), None if hi is None else float(hi))


def check_domain(spec) -> None:
    """One-line ValueError naming ``domain`` (and the channel) unless ``spec`` is one of
    ``DOMAINS`` or a dict of channel name -> a name of ``DOMAINS`` or ``[lower, upper]``."""
    if isinstance(spec, str) and spec in DOMAINS:
        return
    if not isinstance(spec, dict):
        raise ValueError(f"domain: expected {DOMAIN_HELP}, got {spec!r}")
    for name, value in spec.items():
        channel_domain(name, value)


def resolve_domain(spec, targets: list[str], values: np.ndarray) -> list[dict]:
    """The bounds of every target channel, resolved from the training data.

    Args:
        spec: the ``domain`` setting (:func:`check_domain`); channels a dict leaves out are auto.
        targets: the C target channel names (a dict names channels by them).
        values: [T, C] observed training values of every series, stacked (NaN: unobserved).

    Returns:
        per channel ``{"lower", "upper"}`` (a float or None) and ``{"lower_atom",
        "upper_atom"}`` (the data sits on the bound: :data:`ATOM_SHARE`).
    """
    check_domain(spec)
    if isinstance(spec, dict) and (unknown := sorted(set(spec) - set(targets))):
        raise ValueError(f"domain: channel {unknown[0]!r} is not a target (targets: {targets})")
    out = []
    for c, name in enumerate(targets):
        kind = channel_domain(name, spec.get(name, "auto") if isinstance(spec, dict) else spec)
        x = values[:, c][~np.isnan(values[:, c])]
        if kind == "auto":
            kind = "nonnegative" if x.size and x.min() >= 0 else "real"
        lo, hi = {"real": (None, None), "nonnegative": (0.0, None)}.get(kind, kind)
        out.append({
            "lower": lo, "upper": hi,
            "lower_atom": atom_share(x, lo) >= ATOM_SHARE,
            "upper_atom": atom_share(x, hi) >= ATOM_SHARE,
        })  # fmt: skip
    return out


def atom_share(x: np.ndarray, bound: float | None) -> float:
    """Share of the observed values x [n] exactly on ``bound`` (0 for no bound or no values)."""
    return float((x == bound).mean()) if bound is not None and x.size else 0.0


def domain_limits(domain: list[dict], n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound [C] of a resolved ``domain`` (:func:`resolve_domain`) in data
    units, -inf / inf where there is none ([] : unbounded, ``n_channels`` channels)."""
    dom = domain or [{"lower": None, "upper": None}] * n_channels
    lo = np.array([-np.inf if d["lower"] is None else d["lower"] for d in dom])
    return lo, np.array([np.inf if d["upper"] is None else d["upper"] for d in dom])


def check_resolved(domain: list) -> None:
    """One-line ValueError unless ``domain`` is a list of resolved channel domains (as
    :func:`resolve_domain` returns and a saved model's config holds)."""
    keys = {"lower", "upper", "lower_atom", "upper_atom"}
    for c, d in enumerate(domain):
        if not isinstance(d, dict) or set(d) != keys:
            raise ValueError(f"domain[{c}]: expected an object with keys {sorted(keys)}, got {d!r}")
        channel_domain(f"channel {c}", [d["lower"], d["upper"]])


def domain_bounds(
    domain: list[dict], batch: int, channels: int, channel: Tensor | None = None, device=None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Resolved domains as tensors: lower, upper [B, 1, C] float64 (-inf / inf: unbounded) and
    lower_atom, upper_atom bool [B, 1, C].

    ``channel``: None when the C columns are the domain's channels; else long [B], the domain
    channel of each row (channel-independent models: one univariate channel per row, C = 1).
    """
    cols = [
        *domain_limits(domain, len(domain)),
        [bool(d["lower_atom"]) for d in domain],
        [bool(d["upper_atom"]) for d in domain],
    ]
    out = []
    for k, col in enumerate(cols):
        t = torch.tensor(col, dtype=torch.float64 if k < 2 else torch.bool, device=device)
        t = t[channel][:, None, None] if channel is not None else t[None, None]
        out.append(t.expand(batch, 1, channels))
    return tuple(out)


def to_domain(
    z: Tensor,
    loc: Tensor,
    scale: Tensor,
    domain: list[dict],
    encoder: BinEncoder,
    channel: Tensor | None = None,
) -> Tensor:
    """Decode paths to data units inside the domain: the one place values are decoded.

    ``y = z * scale + loc`` (float64), censored at the bounds (a value beyond one lands on it);
    where a bound is an atom, every z below the upper edge of the bin holding the bound's z
    (above the lower edge, for an upper bound) decodes to the bound exactly. The bin is the
    masked mode's; the flow mode uses the same grid (one bin's width around an atom).

    Args:
        z: [B, S, H, C] paths in context-scaled units.
        loc, scale: [B, 1, C] float64 (:func:`target_scale`; scale 0: degenerate context).
        domain: resolved channel domains (:func:`resolve_domain`; [] = unbounded), of the C
            columns or, with ``channel`` (long [B]), of each row (:func:`domain_bounds`).

    Returns:
        [B, S, H, C] float64 in data units, every value within [lower, upper].
    """
    y = z.double() * scale[:, None] + loc[:, None]
    if not domain:
        return y
    B, _, C = loc.shape
    lo, hi, lo_atom, hi_atom = domain_bounds(domain, B, C, channel, device=z.device)
    y = torch.minimum(torch.maximum(y, lo[:, None]), hi[:, None])
    z_lo = standardize(torch.where(torch.isfinite(lo), lo, loc), loc, scale)  # [B, 1, C]
    snap = lo_atom & (scale > 0) & torch.isfinite(lo) & (z_lo.abs() < encoder.z_max)
    edge = torch.where(snap, encoder.bin_edges_of(z_lo)[1], -math.inf)
    y = torch.where(z.double() < edge[:, None], lo[:, None].expand_as(y), y)
    z_hi = standardize(torch.where(torch.isfinite(hi), hi, loc), loc, scale)
    snap = hi_atom & (scale > 0) & torch.isfinite(hi) & (z_hi.abs() < encoder.z_max)
    edge = torch.where(snap, encoder.bin_edges_of(z_hi)[0], math.inf)
    return torch.where(z.double() >= edge[:, None], hi[:, None].expand_as(y), y)
