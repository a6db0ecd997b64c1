"""A generated ski-trip database: events only in winter, none for months.

``build_seasonal(con)`` creates three tables in a DuckDB connection::

    customers(customer_id BIGINT PK, joined_at TIMESTAMP, skill VARCHAR, home VARCHAR)
    resorts  (resort_id BIGINT PK, altitude DOUBLE, region VARCHAR)
    trips    (trip_id BIGINT PK, customer_id FK -> customers, resort_id FK -> resorts,
              started_at TIMESTAMP, nights INTEGER, spend DOUBLE)

Trips happen only from December to March, three times as often on Fridays
and Saturdays; from April to November the database holds no new row. Every
(resort, season) has a hidden snow quality, bad with probability
``P_BAD_SNOW_LOW`` below ``LOW_ALTITUDE`` metres and ``P_BAD_SNOW_HIGH``
above. After a trip on bad snow a skier stops for the rest of the season with
probability ``P_STOP_AFTER_BAD``; at the start of each season a stopped
skier comes back with probability ``P_RETURN`` and an active one quits with
probability ``P_QUIT``. So "trips in the next 30 days" depends on the time
of year (the anchor's place in the season), on how recently and often the
skier went, and on the altitude of their latest resort (two links away).
``home`` is noise; ``skill`` shifts the trip rate.

Vectorised with numpy (one loop over days) and deterministic for a seed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .load import load_tables

__all__ = ["build_seasonal"]

SKILLS = ("beginner", "intermediate", "expert")
SKILL_RATE = (0.6, 1.0, 1.5)     # multiplies the personal trip rate
HOMES = ("city", "suburb", "village")
REGIONS = ("alps", "rockies", "andes", "pyrenees")
LOW_ALTITUDE = 1500.0
P_BAD_SNOW_LOW = 0.8
P_BAD_SNOW_HIGH = 0.1
P_STOP_AFTER_BAD = 0.5
P_RETURN = 0.6
P_QUIT = 0.1
SEASON_MONTHS = (12, 1, 2, 3)
WEEKEND_BOOST = 3.0               # Friday and Saturday
MIN_DAYS_PER_TRIP = 6.0           # personal in-season rate: one trip per 6 ... 30 days
MAX_DAYS_PER_TRIP = 30.0

_DAY_US = 86_400 * 1_000_000

_DDL = {
    "customers": """CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, joined_at TIMESTAMP,
                      skill VARCHAR, home VARCHAR)""",
    "resorts": "CREATE TABLE resorts (resort_id BIGINT PRIMARY KEY, altitude DOUBLE, region VARCHAR)",
    "trips": """CREATE TABLE trips (trip_id BIGINT PRIMARY KEY,
                  customer_id BIGINT REFERENCES customers (customer_id),
                  resort_id BIGINT REFERENCES resorts (resort_id), started_at TIMESTAMP, nights INTEGER,
                  spend DOUBLE)""",
}


def build_seasonal(con, *, customers: int = 2000, resorts: int = 40, seasons: int = 4, seed: int = 0,
                   start: str = "2021-07-01") -> dict[str, int]:
    """Create customers, resorts and trips in ``con``; ``seasons`` winters from ``start``. Rows per table."""
    n_cust, n_res, seasons = int(customers), int(resorts), int(seasons)
    if n_cust < 1 or n_res < 1 or seasons < 1:
        raise ValueError("need customers >= 1, resorts >= 1 and seasons >= 1")
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(start)
    dates = pd.date_range(first, first + pd.DateOffset(years=seasons), inclusive="left", freq="D")
    days = len(dates)
    in_season = np.isin(dates.month, SEASON_MONTHS)
    boost = np.where(np.isin(dates.dayofweek, (4, 5)), WEEKEND_BOOST, 1.0)
    season_of = np.cumsum(np.r_[False, (dates.month[1:] == 12) & (dates.month[:-1] == 11)])  # 0 before the first
    base = np.datetime64(first.to_datetime64(), "us")

    altitude = np.round(rng.uniform(800.0, 3000.0, n_res))
    region = np.array(REGIONS, dtype=object)[rng.integers(0, len(REGIONS), n_res)]
    p_bad = np.where(altitude < LOW_ALTITUDE, P_BAD_SNOW_LOW, P_BAD_SNOW_HIGH)
    bad_snow = rng.random((seasons + 1, n_res)) < p_bad  # [season, resort]
    appeal = rng.lognormal(0.0, 0.7, n_res)
    appeal /= appeal.sum()

    join_day = rng.integers(0, max(1, days // 2), n_cust)
    skill_idx = rng.integers(0, len(SKILLS), n_cust)
    home = np.array(HOMES, dtype=object)[rng.integers(0, len(HOMES), n_cust)]
    # mean over the week of boost is (5 + 2 * WEEKEND_BOOST) / 7: divide it out, so the rate is per day
    rate = (np.asarray(SKILL_RATE)[skill_idx] / rng.uniform(MIN_DAYS_PER_TRIP, MAX_DAYS_PER_TRIP, n_cust)
            / ((5 + 2 * WEEKEND_BOOST) / 7))

    active = np.ones(n_cust, dtype=bool)
    t_cust, t_res, t_day = [], [], []
    for d in range(days):
        if d and season_of[d] != season_of[d - 1]:  # a new season starts
            u = rng.random(n_cust)
            active = np.where(active, u >= P_QUIT, u < P_RETURN)
        if not in_season[d]:
            continue
        who = np.flatnonzero(active & (join_day <= d) & (rng.random(n_cust) < np.minimum(rate * boost[d], 1.0)))
        if who.size == 0:
            continue
        where = rng.choice(n_res, who.size, p=appeal)
        active[who[bad_snow[season_of[d], where] & (rng.random(who.size) < P_STOP_AFTER_BAD)]] = False
        t_cust.append(who)
        t_res.append(where)
        t_day.append(np.full(who.size, d, dtype=np.int64))
    t_cust, t_res, t_day = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (t_cust, t_res, t_day))
    t_us = t_day * _DAY_US + rng.integers(6 * 3_600_000_000, 12 * 3_600_000_000, t_cust.size)
    nights = (rng.poisson(1.5, t_cust.size) + 1).astype(np.int32)
    spend = np.round(nights * rng.lognormal(np.log(150.0), 0.3, t_cust.size), 2)
    order = np.argsort(t_us, kind="stable")

    ts = lambda us: base + us.astype("timedelta64[us]")  # noqa: E731
    frames = {
        "customers": pd.DataFrame({"customer_id": np.arange(1, n_cust + 1, dtype=np.int64),
                                   "joined_at": ts(join_day * _DAY_US),
                                   "skill": np.array(SKILLS, dtype=object)[skill_idx], "home": home}),
        "resorts": pd.DataFrame({"resort_id": np.arange(1, n_res + 1, dtype=np.int64), "altitude": altitude,
                                 "region": region}),
        "trips": pd.DataFrame({"trip_id": np.arange(1, t_cust.size + 1, dtype=np.int64),
                               "customer_id": t_cust[order].astype(np.int64) + 1,
                               "resort_id": t_res[order].astype(np.int64) + 1,
                               "started_at": ts(t_us[order]), "nights": nights[order], "spend": spend[order]}),
    }
    return load_tables(con, _DDL, frames)
