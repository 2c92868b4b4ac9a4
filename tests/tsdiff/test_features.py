"""Calendar features by frequency, the span rule, holidays and the seasonal-lag rule."""

import numpy as np
import pandas as pd
import pytest

from tsdiff.config import ForecasterConfig
from tsdiff.features import (
    Calendar,
    freq_kind,
    history_span,
    holiday_features,
    seasonal_lags,
    time_features,
)


def phase(cal: Calendar, name: str, days) -> np.ndarray:
    """The phase in [0, 1) of feature ``name`` at ``days``, read back from its (sin, cos)."""
    f = cal.features(pd.DatetimeIndex(days))
    j = cal.columns.index(f"{name}_sin")
    return np.mod(np.arctan2(f[:, j], f[:, j + 1]) / (2 * np.pi), 1.0)


def test_day_of_year_is_zero_on_1_january_and_just_below_one_on_31_december():
    cal = Calendar("D", ("doy",))
    got = phase(cal, "doy", ["2021-01-01", "2020-12-31", "2021-12-31", "2020-02-29", "2020-03-01"])
    want = [0.0, 365 / 366, 364 / 365, 59 / 366, 60 / 366]  # 2020 is a leap year
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_christmas_day_of_year_month_and_day_of_week():
    cal = Calendar("D", ("dow", "dom", "doy", "month"))
    days = ["2020-12-25", "2021-12-25"]  # a Friday and a Saturday
    np.testing.assert_allclose(phase(cal, "doy", days), [359 / 366, 358 / 365], atol=1e-6)
    np.testing.assert_allclose(phase(cal, "month", days), [11 / 12] * 2, atol=1e-6)
    np.testing.assert_allclose(phase(cal, "dom", days), [24 / 31] * 2, atol=1e-6)
    np.testing.assert_allclose(phase(cal, "dow", days), [4 / 7, 5 / 7], atol=1e-6)


def test_holiday_columns_around_christmas():
    days = pd.DatetimeIndex(["2020-12-23", "2020-12-24", "2020-12-25", "2020-12-26", "2020-12-27"])
    us = holiday_features(days, "US")  # is-holiday, days until the next, days since the last / 7
    np.testing.assert_array_equal(us[:, 0], [0, 0, 1, 0, 0])
    np.testing.assert_allclose(us[:, 1], [2 / 7, 1 / 7, 0, 6 / 7, 5 / 7], atol=1e-6)  # 1 Jan next
    np.testing.assert_allclose(us[:, 2], [1, 1, 0, 1 / 7, 2 / 7], atol=1e-6)  # clipped at 7 days
    gb = holiday_features(days, "GB")
    np.testing.assert_array_equal(gb[:, 0], [0, 0, 1, 1, 0])  # Boxing Day
    hourly = pd.date_range("2020-12-25 00:00", periods=3, freq="8h")
    np.testing.assert_array_equal(holiday_features(hourly, "US")[:, 0], [1, 1, 1])


def test_candidates_by_frequency_with_a_long_history():
    long = pd.Timedelta(days=3650)
    got = {f: Calendar.choose(f, long).names for f in ("5min", "h", "D", "W", "MS", "QS", "YS")}
    assert got == {
        "5min": ("minute", "hour", "dow", "dom", "doy"),
        "h": ("hour", "dow", "dom", "doy"),
        "D": ("dow", "dom", "doy", "month"),
        "W": ("week",),
        "MS": ("month",),
        "QS": ("quarter",),
        "YS": (),
    }


def test_span_rule_needs_two_full_periods_of_a_feature():
    def names(freq, n):
        ix = pd.date_range("2019-01-01", periods=n, freq=freq)
        return Calendar.choose(freq, history_span([ix], freq)).names

    assert names("D", 365) == ("dow", "dom")  # one year: no day or month of year
    assert names("D", 730) == ("dow", "dom", "doy", "month")
    assert names("D", 13) == ()  # under two weeks
    assert names("h", 24 * 30) == ("hour", "dow")  # 30 days: no day of month yet
    assert names("h", 24 * 60) == ("hour", "dow", "dom")
    assert names("MS", 23) == () and names("MS", 24) == ("month",)
    assert names("QS", 7) == () and names("QS", 8) == ("quarter",)
    assert names("W", 104) == ("week",)
    # the longest series decides, not the union of all of them
    short = [pd.date_range(f"{y}-01-01", periods=200, freq="D") for y in range(2010, 2020)]
    assert history_span(short, "D") == pd.Timedelta(days=200)


def test_legacy_features_are_those_saved_models_were_trained_with():
    assert Calendar.legacy("h").names == ("hour", "dow")
    assert Calendar.legacy("D").names == ("dow",)
    assert Calendar.legacy("MS").names == Calendar.legacy("QS").names == ("month",)
    ix = pd.date_range("2021-03-01 05:30", periods=5, freq="30min")
    hour = ((ix.hour + ix.minute / 60) / 24).to_numpy()
    np.testing.assert_allclose(time_features(ix, "30min")[:, 0], np.sin(2 * np.pi * hour), 1e-6)
    assert freq_kind("B") == "daily" and Calendar.legacy("B").names == ()


def test_unknown_country_code_is_one_line_naming_the_field():
    with pytest.raises(ValueError, match=r"^holidays: unknown country .*'XX'") as e:
        ForecasterConfig(freq="D", holidays="XX")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"^holidays: unknown country .*'US-ZZ'"):
        ForecasterConfig(freq="D", holidays="US-ZZ")
    with pytest.raises(ValueError, match=r"^holidays: only for daily or finer data; freq is 'MS'"):
        ForecasterConfig(freq="MS", holidays="US")
    assert ForecasterConfig(freq="h", holidays="US-CA").holidays == "US-CA"


def test_seasonal_lags_where_the_season_is_longer_than_the_context():
    assert seasonal_lags("D", 168, 3000) == [364]  # the week fits the context, the year does not
    assert seasonal_lags("D", 5, 3000) == [7, 364]
    assert seasonal_lags("D", 400, 3000) == []  # the context holds a year
    assert seasonal_lags("D", 168, 700) == []  # under two years of history
    assert seasonal_lags("h", 96, 5000) == [168]  # a week of hours, longer than the context
    assert seasonal_lags("30min", 24, 5000) == [48, 336]
    assert seasonal_lags("MS", 6, 100) == [12] and seasonal_lags("MS", 24, 100) == []
    assert seasonal_lags("YS", 1, 100) == []
