"""Figures: fan charts of sample paths, PIT histograms, scenario comparisons (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lm_core.outputs import write_output_file


def _plt():
    import matplotlib  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    return plt


def _save(fig, path: str | Path) -> Path:
    """Write a figure atomically (:func:`lm_core.outputs.write_output_file`), in the format
    of the file name's extension (PNG without one); an OS error is one :class:`OutputError`."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return write_output_file(
        path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format=fmt)
    )


def fan(ax, x, samples: np.ndarray, color="C0", label=None, levels=(0.5, 0.8, 0.95)) -> None:
    """Draw the median and central intervals of ``samples`` [S, H] on ``ax`` against ``x`` [H]."""
    for lvl in sorted(levels, reverse=True):
        lo, hi = np.quantile(samples, [(1 - lvl) / 2, (1 + lvl) / 2], axis=0)
        ax.fill_between(x, lo, hi, color=color, alpha=0.15 + 0.15 * (1 - lvl), linewidth=0)
    ax.plot(x, np.median(samples, axis=0), color=color, lw=1.5, label=label)


def fan_chart(
    history: np.ndarray,
    samples: np.ndarray,
    path: str | Path,
    *,
    truth: np.ndarray | None = None,
    names: list[str] | None = None,
    title: str = "",
    max_channels: int = 4,
) -> Path:
    """One panel per channel: history [T, C], sample paths [S, H, C], optional truth [H, C]."""
    plt = _plt()
    C = min(samples.shape[-1], max_channels)
    fig, axes = plt.subplots(C, 1, figsize=(9, 2.4 * C), squeeze=False)
    T, H = history.shape[0], samples.shape[1]
    for c in range(C):
        ax = axes[c, 0]
        ax.plot(np.arange(T), history[:, c], color="k", lw=1)
        fan(ax, np.arange(T, T + H), samples[:, :, c], label="forecast")
        if truth is not None:
            ax.plot(np.arange(T, T + H), truth[:, c], color="C3", lw=1, label="truth")
        ax.set_ylabel(names[c] if names else f"ch{c}")
    axes[0, 0].set_title(title)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = _save(fig, path)
    plt.close(fig)
    return path


def pit_histogram(pit: np.ndarray, path: str | Path, *, bins: int = 10, title: str = "PIT") -> Path:
    """Histogram of PIT values (flat = calibrated), with the uniform density as a dashed line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(np.asarray(pit).ravel(), bins=bins, range=(0, 1), density=True, color="C0", alpha=0.8)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_xlabel("PIT")
    ax.set_ylabel("density")
    ax.set_title(title)
    fig.tight_layout()
    path = _save(fig, path)
    plt.close(fig)
    return path


def scenario_chart(
    history: np.ndarray,
    samples_by_plan: np.ndarray,
    plan_names: list[str],
    path: str | Path,
    *,
    channel: int = 0,
    title: str = "",
) -> Path:
    """Fan charts of every plan on one figure: history [T, C], samples [A, S, H, C]."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    T = history.shape[0]
    ax.plot(np.arange(T), history[:, channel], color="k", lw=1)
    H = samples_by_plan.shape[2]
    for a, name in enumerate(plan_names):
        fan(
            ax,
            np.arange(T, T + H),
            samples_by_plan[a, :, :, channel],
            color=f"C{a}",
            label=name,
            levels=(0.8,),
        )
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    path = _save(fig, path)
    plt.close(fig)
    return path
