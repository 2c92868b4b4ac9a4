"""Figures: fan charts of sample paths, PIT histograms, scenario comparisons (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

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


def time_axis(T: int, H: int, origin=None, freq: str | None = None):
    """x values of a history of ``T`` steps and a horizon of ``H``: timestamps (the horizon starts
    at ``origin``, steps of ``freq``) when both are given, else step numbers ``0 .. T + H - 1``.

    Returns ``(x_history [T], x_horizon [H])``."""
    if origin is None or freq is None:
        return np.arange(T), np.arange(T, T + H)
    stamps = pd.date_range(end=pd.Timestamp(origin), periods=T + 1, freq=freq)[:-1]
    return stamps, pd.date_range(start=pd.Timestamp(origin), periods=H, freq=freq)


def _date_ticks(fig, ax, dated: bool) -> None:
    if dated:
        fig.autofmt_xdate()


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
    origin=None,
    freq: str | None = None,
) -> Path:
    """One panel per channel: history [T, C], sample paths [S, H, C], optional truth [H, C].

    With ``origin`` (the first forecast timestamp) and ``freq`` the x-axis shows dates, else steps."""
    plt = _plt()
    C = min(samples.shape[-1], max_channels)
    fig, axes = plt.subplots(C, 1, figsize=(9, 2.4 * C), squeeze=False, sharex=True)
    T, H = history.shape[0], samples.shape[1]
    x_hist, x_fut = time_axis(T, H, origin, freq)
    for c in range(C):
        ax = axes[c, 0]
        ax.plot(x_hist, history[:, c], color="k", lw=1)
        fan(ax, x_fut, samples[:, :, c], label="forecast")
        if truth is not None:
            ax.plot(x_fut, truth[:, c], color="C3", lw=1, label="truth")
        ax.set_ylabel(names[c] if names else f"ch{c}")
    _date_ticks(fig, axes[-1, 0], origin is not None and freq is not None)
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
    origin=None,
    freq: str | None = None,
) -> Path:
    """Fan charts of every plan on one figure: history [T, C], samples [A, S, H, C]; dates on
    the x-axis with ``origin`` (first forecast timestamp) and ``freq``, else steps."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    T, H = history.shape[0], samples_by_plan.shape[2]
    x_hist, x_fut = time_axis(T, H, origin, freq)
    ax.plot(x_hist, history[:, channel], color="k", lw=1)
    for a, name in enumerate(plan_names):
        fan(
            ax,
            x_fut,
            samples_by_plan[a, :, :, channel],
            color=f"C{a}",
            label=name,
            levels=(0.8,),
        )
    ax.legend(fontsize=8)
    ax.set_title(title)
    _date_ticks(fig, ax, origin is not None and freq is not None)
    fig.tight_layout()
    path = _save(fig, path)
    plt.close(fig)
    return path
