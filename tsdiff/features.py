"""Calendar features, holidays and seasonal lags, chosen from the frequency and the history.

**Calendar features by frequency** (what GluonTS's ``time_features_from_frequency_str`` gives a
user, written here from the calendar): each is a cyclic feature encoded as (sin, cos) of its
phase in [0, 1), two columns.

==============  =====================================================
frequency       candidate features (``CANDIDATES``)
==============  =====================================================
sub-hourly      minute, hour, dow, dom, doy
hourly          hour, dow, dom, doy
daily           dow, dom, doy, month
weekly          week
monthly         month
quarterly       quarter
yearly          none
==============  =====================================================

minute: minute of the hour; hour: time of day (hour + minute / 60) / 24; dow: day of week;
dom: (day - 1) / days in the month; doy: (day of year - 1) / days in the year (365 or 366, so
1 January is phase 0 and 31 December is just below 1 in every year); month: month of year;
week: ISO week of year; quarter: quarter of year.

**The span rule.** A feature is used only when the training history (its longest series) covers
at least two full periods of it (``PERIODS``: an hour, a day, a week, 28 days, 364 days): a model
trained on under a year of half-hourly data never saw most days of the year, and day-of-year then
only adds noise (../shared/DATA.md: it sank DeepAR on elecdemand). :meth:`Calendar.choose` applies
the rule once, at fit time; the chosen names are saved with the model (``TSModelConfig.
time_features``), so a loaded model computes the same features.

**Holidays** (``holidays="US"``, or with a subdivision ``"US-CA"``; the ``holidays`` package),
daily and finer data: three columns, 1 on a public holiday (else 0), the days until the next
holiday and the days since the last one, each clipped at ``HOLIDAY_CLIP`` days and divided by it
(sub-daily steps take their date's values).

**Seasonal lags** (:func:`seasonal_lags`): where a season is longer than the context (a yearly
cycle in daily data, a weekly one in hourly data with a context under a week), every context and
horizon step gets the target one season earlier (DeepAR's seasonal lags), scaled like the target
(tsdiff.model); the window builder reads it (tsdiff.data.windows.make_window).

Models saved before the features were named (``time_features`` None) use :meth:`Calendar.legacy`:
hour and day of week for sub-daily data, day of week for daily data, month of year for weekly,
monthly and quarterly data; so does the GluonTS estimator (tsdiff.gluonts).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

HOLIDAY_CLIP = 7
"""Days at which the distance-to-holiday features saturate."""

PERIODS = {
    "minute": pd.Timedelta(hours=1),
    "hour": pd.Timedelta(days=1),
    "dow": pd.Timedelta(days=7),
    "dom": pd.Timedelta(days=28),
    "doy": pd.Timedelta(days=364),
    "month": pd.Timedelta(days=364),
    "week": pd.Timedelta(days=364),
    "quarter": pd.Timedelta(days=364),
}
"""The shortest length of each feature's period (a month has at least 28 days; a year is taken
as 52 weeks, so that 104 weekly or 24 monthly steps count as two years)."""

CANDIDATES = {
    "subhourly": ("minute", "hour", "dow", "dom", "doy"),
    "hourly": ("hour", "dow", "dom", "doy"),
    "daily": ("dow", "dom", "doy", "month"),
    "weekly": ("week",),
    "monthly": ("month",),
    "quarterly": ("quarter",),
    "yearly": (),
}
LEGACY = {
    "subhourly": ("hour", "dow"),
    "hourly": ("hour", "dow"),
    "daily": ("dow",),
    "weekly": ("month",),
    "monthly": ("month",),
    "quarterly": ("month",),
    "yearly": (),
}
FINE_KINDS = ("subhourly", "hourly", "daily")  # where holidays apply


def parse_freq(freq: str) -> pd.DateOffset:
    """pandas offset for ``freq``; a clear ValueError naming the flag when pandas cannot parse it."""
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as e:
        raise ValueError(f"freq: pandas cannot parse {freq!r} as a frequency ({e})") from None


def _step(freq: str) -> pd.Timedelta | None:
    """The fixed length of one step, or None for calendar offsets (months, business days...)."""
    try:
        return pd.Timedelta(parse_freq(freq))
    except (ValueError, TypeError):
        return None


def freq_kind(freq: str) -> str:
    """subhourly, hourly, daily, weekly, monthly, quarterly or yearly."""
    delta = _step(freq)
    if delta is not None:
        for kind, limit in (("subhourly", "1h"), ("hourly", "1D"), ("daily", "7D")):
            if delta < pd.Timedelta(limit):
                return kind
        return "weekly"
    name = type(parse_freq(freq)).__name__
    for part, kind in (("Hour", "hourly"), ("Day", "daily"), ("Week", "weekly")):
        if part in name:
            return kind
    for part, kind in (("Month", "monthly"), ("Quarter", "quarterly")):
        if part in name:
            return kind
    return "yearly"


def _phase(name: str, index: pd.DatetimeIndex) -> np.ndarray:
    """Phase in [0, 1) of feature ``name`` at each timestamp."""
    if name == "minute":
        return index.minute.to_numpy() / 60.0
    if name == "hour":
        return (index.hour.to_numpy() + index.minute.to_numpy() / 60.0) / 24.0
    if name == "dow":
        return index.dayofweek.to_numpy() / 7.0
    if name == "dom":
        return (index.day.to_numpy() - 1) / index.days_in_month.to_numpy()
    if name == "doy":
        return (index.dayofyear.to_numpy() - 1) / np.where(index.is_leap_year, 366.0, 365.0)
    if name == "month":
        return (index.month.to_numpy() - 1) / 12.0
    if name == "week":
        return (index.isocalendar().week.to_numpy(dtype=np.float64) - 1) / 53.0
    if name == "quarter":
        return (index.quarter.to_numpy() - 1) / 4.0
    raise ValueError(f"time_features: unknown calendar feature {name!r}; known: {list(PERIODS)}")


@lru_cache(maxsize=64)
def _holiday_dates(code: str, years: range) -> np.ndarray:
    """Sorted datetime64[D] holidays of ``code`` ("US" or "US-CA") in ``years`` (cached: read
    only)."""
    import holidays  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    country, _, subdiv = code.partition("-")
    try:
        table = holidays.country_holidays(country, subdiv=subdiv or None, years=list(years))
    except NotImplementedError as e:
        raise ValueError(
            f"holidays: unknown country or subdivision code {code!r} ({e}); expected an ISO code "
            "such as 'US', 'GB', 'AU' or 'US-CA'"
        ) from None
    return np.array(sorted(table), dtype="datetime64[D]")


def check_holidays(code: str | None, freq: str) -> None:
    """A ValueError naming the field when ``code`` is not a known country (or subdivision) or
    ``freq`` is coarser than daily."""
    if code is None:
        return
    if not isinstance(code, str) or not code:
        raise ValueError(f"holidays: expected a country code such as 'US', got {code!r}")
    if freq_kind(freq) not in FINE_KINDS:
        raise ValueError(
            f"holidays: only for daily or finer data; freq is {freq!r} (set holidays=None)"
        )
    _holiday_dates(code, range(2000, 2001))


def holiday_features(index: pd.DatetimeIndex, code: str) -> np.ndarray:
    """[T, 3] float32: is-holiday, days until the next and since the last holiday (clipped at
    ``HOLIDAY_CLIP`` and divided by it) of each timestamp's date."""
    days = index.to_numpy().astype("datetime64[D]")
    if len(days) == 0:
        return np.zeros((0, 3), np.float32)
    years = range(int(index.year.min()) - 1, int(index.year.max()) + 2)
    hol = _holiday_dates(code, years)
    far = np.timedelta64(10 * HOLIDAY_CLIP, "D")
    ext = np.concatenate([[days.min() - far], hol, [days.max() + far]])  # sentinels
    nxt = ext[np.searchsorted(ext, days, side="left")]
    prv = ext[np.searchsorted(ext, days, side="right") - 1]
    until = np.minimum((nxt - days).astype(np.int64), HOLIDAY_CLIP) / HOLIDAY_CLIP
    since = np.minimum((days - prv).astype(np.int64), HOLIDAY_CLIP) / HOLIDAY_CLIP
    return np.stack([until == 0, until, since], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class Calendar:
    """The calendar inputs of one model: cyclic features ``names`` and optional ``holidays``."""

    freq: str
    names: tuple[str, ...]
    holidays: str | None = None

    def __post_init__(self) -> None:
        unknown = [n for n in self.names if n not in PERIODS]
        if unknown:
            raise ValueError(f"time_features: unknown {unknown}; known: {list(PERIODS)}")
        check_holidays(self.holidays, self.freq)

    @property
    def n_features(self) -> int:
        """F, the columns of :meth:`features`."""
        return 2 * len(self.names) + (3 if self.holidays else 0)

    @property
    def columns(self) -> list[str]:
        """Names of the F columns."""
        cols = [f"{n}_{f}" for n in self.names for f in ("sin", "cos")]
        return cols + (["holiday", "holiday_until", "holiday_since"] if self.holidays else [])

    def features(self, index: pd.DatetimeIndex) -> np.ndarray:
        """[len(index), F] float32 calendar features (F = :attr:`n_features`, may be 0)."""
        cols = []
        for name in self.names:
            phase = 2 * np.pi * _phase(name, index)
            cols += [np.sin(phase), np.cos(phase)]
        out = [np.stack(cols, axis=-1)] if cols else []
        if self.holidays:
            out.append(holiday_features(index, self.holidays))
        if not out:
            return np.zeros((len(index), 0), dtype=np.float32)
        return np.concatenate(out, axis=-1).astype(np.float32)

    @classmethod
    def saved(cls, names: list[str] | None, freq: str, holidays: str | None = None) -> Calendar:
        """The calendar of a model whose config names its features ``names`` (None: a model
        saved before features were named: :meth:`legacy`)."""
        return cls.legacy(freq) if names is None else cls(freq, tuple(names), holidays)

    @classmethod
    def legacy(cls, freq: str) -> Calendar:
        """The features of models saved before they were named (see the module docstring;
        calendar offsets of hours or days, such as business days, had none)."""
        kind = freq_kind(freq)
        if kind in FINE_KINDS and _step(freq) is None:
            return cls(freq, ())
        return cls(freq, LEGACY[kind])

    @classmethod
    def choose(cls, freq: str, span: pd.Timedelta, holidays: str | None = None) -> Calendar:
        """The candidates of ``freq`` whose period the training history ``span`` (its longest
        series, first step to one step past the last) covers at least twice (the span rule)."""
        names = tuple(n for n in CANDIDATES[freq_kind(freq)] if span >= 2 * PERIODS[n])
        return cls(freq, names, holidays)


def history_span(indexes: list[pd.DatetimeIndex], freq: str) -> pd.Timedelta:
    """Time covered by the longest of ``indexes``, one step past its last timestamp included."""
    off = parse_freq(freq)
    spans = [(ix[-1] + off) - ix[0] for ix in indexes if len(ix)]
    return max(spans, default=pd.Timedelta(0))


def seasonal_lags(freq: str, context_length: int, longest: int) -> list[int]:
    """Lags (in steps) of the seasons that the context cannot see one period of.

    The seasons: a day and a week for sub-daily data; a week and a year of 364 days (52 weeks:
    the lag keeps the weekday) for daily data, a year for weekly (52), monthly (12) and
    quarterly (4) data; none for yearly data. A season's lag is used when it is longer than the
    context (``context_length``) and the longest training series (``longest`` steps) covers two
    seasons (so that most training windows see the lagged value). At most two lags, the shortest.
    """
    kind = freq_kind(freq)
    step = _step(freq)
    if kind in FINE_KINDS and step is not None:
        periods = ["1D", "7D"] if kind != "daily" else ["7D", "364D"]
        seasons = [pd.Timedelta(p) / step for p in periods]
        seasons = [int(s) for s in seasons if s >= 1 and float(s).is_integer()]
    else:
        seasons = {"weekly": [52], "monthly": [12], "quarterly": [4]}.get(kind, [])
    return [s for s in seasons if s > context_length and longest >= 2 * s][:2]


def time_features(index: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """[len(index), F] float32 features of :meth:`Calendar.legacy` (models with unnamed
    features, the GluonTS estimator); a Forecaster uses the :class:`Calendar` saved with it."""
    return Calendar.legacy(freq).features(index)


def feature_names(freq: str) -> list[str]:
    """Column names of :func:`time_features` for this frequency."""
    return Calendar.legacy(freq).columns


def season_length(freq: str) -> int:
    """A default seasonal period (for seasonal naive and MASE): 24/day for hourly, 12 for monthly."""
    off = parse_freq(freq)
    try:
        delta = pd.Timedelta(off)
        if delta < pd.Timedelta(days=1):
            return max(1, int(pd.Timedelta(days=1) / delta))
        if delta < pd.Timedelta(days=7):
            return 7
        return 52
    except (ValueError, TypeError):
        name = type(off).__name__
        if "Month" in name:
            return 12
        if "Quarter" in name:
            return 4
        return 1
