"""SYNTHETIC benchmark data: a heated building whose action effects are known exactly.

This is a documented data generator for checking scenario rollouts against ground truth; it is
synthetic by design (the true effect of every action plan must be known), and everything it
produces is labelled so.

Hourly dynamics of the indoor temperature ``T`` (deg C) under heating power ``u`` in [0, 1]::

    T[t+1] = T[t] + k * (T_out[t] - T[t]) + g * u[t] + e[t],   e ~ N(0, sigma^2)

with outdoor temperature ``T_out[t] = m + A sin(2 pi (hour - 9) / 24) + w[t]``, ``w`` an AR(1)
weather anomaly. ``u`` is the action (a known-future covariate the user sets); ``T_out`` is an
exogenous driver (known in the future, as a weather forecast). Historical actions follow a random
policy (piecewise-constant levels of random length, independent of the state), so the effect of
``u`` is identifiable from the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Building:
    """Parameters of the simulated building (per hour)."""

    k: float = 0.12
    """Heat-loss rate toward the outdoor temperature."""
    g: float = 1.5
    """Warming per hour at full heating power."""
    sigma: float = 0.4
    """Standard deviation of the hourly disturbance."""
    t_out_mean: float = 4.0
    t_out_amp: float = 5.0
    weather_phi: float = 0.95
    weather_sd: float = 0.5

    def outdoor(self, index: pd.DatetimeIndex, rng: np.random.Generator) -> np.ndarray:
        """Outdoor temperature [T] on the hourly ``index``."""
        w = np.zeros(len(index))
        for t in range(1, len(index)):
            w[t] = self.weather_phi * w[t - 1] + self.weather_sd * rng.standard_normal()
        hour = index.hour.to_numpy()
        return self.t_out_mean + self.t_out_amp * np.sin(2 * np.pi * (hour - 9) / 24) + w

    def step(self, T: np.ndarray, t_out, u, rng: np.random.Generator) -> np.ndarray:
        """One hour of dynamics for an array of states T [...]."""
        return T + self.k * (t_out - T) + self.g * u + self.sigma * rng.standard_normal(T.shape)

    def simulate(
        self, T0: float, t_out: np.ndarray, u: np.ndarray, n_paths: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Monte-Carlo futures [n_paths, H] of T after state T0 under the plan u [H]."""
        T = np.full(n_paths, float(T0))
        out = np.empty((n_paths, len(u)))
        for h in range(len(u)):
            T = self.step(T, t_out[h], u[h], rng)
            out[:, h] = T
        return out

    def mean_path(self, T0: float, t_out: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The exact expected path [H] (the dynamics are linear, so the noise averages out)."""
        T, out = float(T0), np.empty(len(u))
        for h in range(len(u)):
            T = T + self.k * (t_out[h] - T) + self.g * u[h]
            out[h] = T
        return out


def random_policy(n: int, rng: np.random.Generator) -> np.ndarray:
    """Historical heating actions [n]: levels in {0, .25, .5, .75, 1} held for 2-8 hours."""
    u = np.empty(n)
    t = 0
    while t < n:
        d = int(rng.integers(2, 9))
        u[t : t + d] = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])
        t += d
    return u


def make_dataset(
    n_buildings: int = 16,
    n_hours: int = 24 * 60,
    seed: int = 0,
    building: Building | None = None,
    start: str = "2023-01-01",
) -> tuple[pd.DataFrame, Building]:
    """SYNTHETIC long frame: item_id, timestamp, indoor (target), heating (action), t_out."""
    b = building or Building()
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n_hours, freq="h")
    frames = []
    for i in range(n_buildings):
        t_out = b.outdoor(index, rng)
        u = random_policy(n_hours, rng)
        T = np.empty(n_hours)
        T[0] = 15.0 + rng.normal()
        for t in range(1, n_hours):
            T[t] = b.step(np.array(T[t - 1]), t_out[t - 1], u[t - 1], rng)
        # the action of hour t acts on the temperature of hour t + 1: align it with its effect
        heating = np.concatenate([[0.0], u[:-1]])
        t_out_lag = np.concatenate([[t_out[0]], t_out[:-1]])
        frames.append(
            pd.DataFrame(
                {
                    "item_id": f"building_{i:02d}",
                    "timestamp": index,
                    "indoor": T,
                    "heating": heating,
                    "t_out": t_out_lag,
                }
            )
        )
    return pd.concat(frames, ignore_index=True), b


def plan_frame(item_id: str, steps: pd.DatetimeIndex, heating: np.ndarray, t_out: np.ndarray):
    """A plan as a long frame of future covariates for one item (the column alignment above)."""
    return pd.DataFrame(
        {"item_id": item_id, "timestamp": steps, "heating": heating, "t_out": t_out}
    )
