"""The pretraining corpus: real series from long-frame files plus a pool of synthetic series, cut
into batches of univariate (context, horizon) windows with one horizon length per batch.

Real series: every ``.parquet`` / ``.csv`` file named (or found in a folder named) in
``real``, a long frame with ``item_id``, ``timestamp`` and numeric target columns; each (item,
column) pair is one univariate series, in timestamp order, NaN where unobserved (its frequency
does not matter: the base has no calendar inputs and every window is scaled by its own context).
``python -m benchmarks.pretrain_split`` writes the suite's pretraining sets in this form.

Synthetic series: :func:`tsdiff.pretrain.synthetic.generate` (Gaussian-process kernel
compositions, structural and intermittent generators, mixtures of the real series), drawn once
from the seed and kept in memory.

Batch ``i`` is a fixed function of (seed, i) (:class:`PretrainBatches`), so a resumed run sees
what an uninterrupted one does (:class:`lm_core.train.callbacks.ResumableLoader`). A batch draws
its horizon ``H`` from ``horizons``, then each window: real with probability ``real_share``
(a real set uniformly, a series within it in proportion to its length), else a synthetic series;
its end uniformly among the positions that leave ``min_context`` context steps and the full
horizon. Windows are the shapes of :mod:`tsdiff.data.windows` with one channel and no
calendar, covariate or static inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from tsdiff.data.frames import DataError
from tsdiff.data.windows import collate
from tsdiff.pretrain.synthetic import generate

REAL_SUFFIXES = (".parquet", ".csv", ".csv.gz")


@dataclass
class CorpusConfig:
    """What the base is pretrained on."""

    real: list[str] = field(default_factory=list)
    """Long-frame files, or folders of them (item_id, timestamp, targets)."""
    real_share: float = 0.6
    """Share of windows drawn from the real series (the rest: synthetic)."""
    synthetic_series: int = 3000
    """Synthetic series drawn once from the seed."""
    synthetic_lengths: tuple[int, int] = (64, 1024)
    """Length range of the synthetic series (log-uniform)."""
    synthetic_mix: dict[str, float] | None = None
    """Generator weights (tsdiff.pretrain.synthetic.generate's ``mix``); None: its default."""
    horizons: list[int] = field(default_factory=lambda: [6, 8, 12, 16, 24, 30, 48, 64])
    """Horizon lengths, one drawn per batch (uniformly)."""
    min_context: int = 8
    """Observed context steps a window needs at least."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.real_share <= 1.0:
            raise ValueError(
                f"corpus.real_share: expected a share in [0, 1], got {self.real_share}"
            )
        if not self.horizons or any(int(h) < 1 for h in self.horizons):
            raise ValueError(f"corpus.horizons: expected positive integers, got {self.horizons}")


def real_files(paths: list[str]) -> list[Path]:
    """The long-frame files named in ``paths`` (folders: their files, sorted); one-line
    FileNotFoundError naming a path that is not there."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.name.endswith(REAL_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(
                f"corpus.real: no file or folder {str(p)!r} (the suite's pretraining sets are "
                "written by `python -m benchmarks.pretrain_split`)"
            )
    return out


def read_real(path: Path) -> list[np.ndarray]:
    """The univariate series [T] (float64, NaN unobserved) of one long-frame file: one per item
    and numeric column other than item_id / timestamp."""
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:  # a corrupt or unreadable file: one line naming it
        raise DataError(f"{path}: not a readable long frame ({type(e).__name__}: {e})") from None
    for col in ("item_id", "timestamp"):
        if col not in df.columns:
            raise DataError(f"{path}: no {col!r} column (expected item_id, timestamp, targets)")
    targets = [c for c in df.columns if c not in ("item_id", "timestamp")]
    bad = [c for c in targets if not pd.api.types.is_numeric_dtype(df[c])]
    if bad or not targets:
        raise DataError(f"{path}: target columns must be numeric; got {bad or 'none'}")
    df = df.sort_values(["item_id", "timestamp"], kind="stable")
    out = []
    for _, item in df.groupby("item_id", sort=False):
        for c in targets:
            x = item[c].to_numpy(np.float64)
            if np.isfinite(x).sum() >= 2:
                out.append(np.where(np.isfinite(x), x, np.nan))
    return out


@dataclass
class Corpus:
    """Series by source: ``real`` {set name: [series [T]]} and ``synthetic`` [series [T]]."""

    real: dict[str, list[np.ndarray]]
    synthetic: list[np.ndarray]

    @classmethod
    def build(cls, cfg: CorpusConfig, seed: int) -> Corpus:
        real = {}
        for f in real_files(cfg.real):
            name = f.name.split(".")[0]
            real[name] = read_real(f)
        pool = [x for xs in real.values() for x in xs]
        n = cfg.synthetic_series if cfg.real_share < 1.0 else 0
        rng = np.random.default_rng([seed, 1])
        mix = dict(cfg.synthetic_mix) if cfg.synthetic_mix else None
        synthetic = generate(rng, n, tuple(cfg.synthetic_lengths), mix=mix, pool=pool or None)
        if not real and cfg.real_share > 0:
            raise DataError("corpus.real: no real series found; give files or set real_share 0")
        return cls(real, [np.asarray(x, np.float64) for x in synthetic])

    def summary(self) -> dict:
        """Series and values per source (recorded with the base)."""
        out = {
            name: {"series": len(xs), "values": int(sum(np.isfinite(x).sum() for x in xs))}
            for name, xs in self.real.items()
        }
        out["synthetic"] = {
            "series": len(self.synthetic),
            "values": int(sum(len(x) for x in self.synthetic)),
        }
        return out


def window(x: np.ndarray, end: int, L: int, H: int) -> dict:
    """The window dict (tsdiff.data.windows shapes, one channel, no other inputs) of series
    ``x`` [T] with context ``x[end - L : end]`` (left-padded unobserved) and horizon
    ``x[end : end + H]``."""
    ctx = np.full(L, np.nan)
    lo = max(end - L, 0)
    ctx[L - (end - lo) :] = x[lo:end]
    fut = x[end : end + H]
    e0, e1 = np.zeros((L, 0), np.float32), np.zeros((H, 0), np.float32)
    return {
        "ctx": np.nan_to_num(ctx)[:, None],
        "ctx_obs": np.isfinite(ctx)[:, None],
        "fut": np.nan_to_num(fut)[:, None],
        "fut_obs": np.isfinite(fut)[:, None],
        "tf_ctx": e0, "tf_fut": e1, "pcov_ctx": e0, "pcov_obs": e0.astype(bool),
        "fcov_ctx": e0, "fcov_fut": e1,
        "static_real": np.zeros(0, np.float32), "static_cat": np.zeros(0, np.int64),
    }  # fmt: skip


class PretrainBatches(Dataset):
    """``n_batches`` batches of ``batch_size`` windows; item ``i`` is a whole batch (collated),
    a fixed function of (seed, i). Use with ``DataLoader(batch_size=1, collate_fn=first)``."""

    def __init__(
        self,
        corpus: Corpus,
        cfg: CorpusConfig,
        context_length: int,
        batch_size: int,
        n_batches: int,
        seed: int = 0,
    ) -> None:
        self.corpus, self.cfg, self.L = corpus, cfg, context_length
        self.batch_size, self.n_batches, self.seed = batch_size, n_batches, seed
        self.sets = [xs for xs in corpus.real.values() if xs]
        self.weights = [np.array([len(x) for x in xs], np.float64) for xs in self.sets]
        self.weights = [w / w.sum() for w in self.weights]

    def __len__(self) -> int:
        return self.n_batches

    def _draw(self, rng: np.random.Generator, H: int) -> dict:
        cfg = self.cfg
        for _ in range(50):
            if self.sets and (not self.corpus.synthetic or rng.random() < cfg.real_share):
                k = int(rng.integers(len(self.sets)))
                x = self.sets[k][int(rng.choice(len(self.sets[k]), p=self.weights[k]))]
            else:
                x = self.corpus.synthetic[int(rng.integers(len(self.corpus.synthetic)))]
            lo, hi = cfg.min_context, len(x) - H
            if hi < lo:
                continue
            end = int(rng.integers(lo, hi + 1))
            w = window(x, end, self.L, H)
            if w["fut_obs"].any() and w["ctx_obs"].sum() >= cfg.min_context:
                return w
        raise DataError(f"no series of the corpus holds a window with a {H}-step horizon")

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 2, i])
        H = int(rng.choice(self.cfg.horizons))
        return collate([self._draw(rng, H) for _ in range(self.batch_size)])


def first(items: list):
    """``collate_fn`` of a loader whose items are whole batches."""
    return items[0]
