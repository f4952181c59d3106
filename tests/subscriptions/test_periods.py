"""The period engine: every interval × billing time, month-end anniversaries, leap years, DST edges."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subscriptions.periods import (
    Period,
    full_period_days,
    next_period,
    period_containing,
    periods_ending_between,
    prorate,
)

D = date


def pc(start, interval, billing_time, on):
    return period_containing(start_date=start, interval=interval, billing_time=billing_time, on=on)


@pytest.mark.parametrize(
    "interval,start,on,expected",
    [
        # calendar: first period short, then calendar boundaries
        ("week", D(2026, 1, 7), D(2026, 1, 8), Period(D(2026, 1, 7), D(2026, 1, 12))),  # Wed → next Monday
        ("week", D(2026, 1, 7), D(2026, 1, 12), Period(D(2026, 1, 12), D(2026, 1, 19))),
        ("week", D(2026, 1, 7), D(2026, 1, 18), Period(D(2026, 1, 12), D(2026, 1, 19))),  # Sunday
        ("month", D(2026, 1, 15), D(2026, 1, 31), Period(D(2026, 1, 15), D(2026, 2, 1))),
        ("month", D(2026, 1, 15), D(2026, 2, 1), Period(D(2026, 2, 1), D(2026, 3, 1))),
        ("month", D(2026, 1, 15), D(2026, 12, 31), Period(D(2026, 12, 1), D(2027, 1, 1))),
        ("quarter", D(2026, 2, 15), D(2026, 3, 31), Period(D(2026, 2, 15), D(2026, 4, 1))),
        ("quarter", D(2026, 2, 15), D(2026, 11, 5), Period(D(2026, 10, 1), D(2027, 1, 1))),
        ("year", D(2026, 7, 1), D(2026, 7, 1), Period(D(2026, 7, 1), D(2027, 1, 1))),
        ("year", D(2026, 7, 1), D(2028, 2, 29), Period(D(2028, 1, 1), D(2029, 1, 1))),
    ],
)
def test_calendar_periods(interval, start, on, expected):
    assert pc(start, interval, "calendar", on) == expected


@pytest.mark.parametrize(
    "interval,start,on,expected",
    [
        ("week", D(2026, 1, 7), D(2026, 1, 13), Period(D(2026, 1, 7), D(2026, 1, 14))),
        ("week", D(2026, 1, 7), D(2026, 1, 14), Period(D(2026, 1, 14), D(2026, 1, 21))),
        ("month", D(2026, 1, 15), D(2026, 2, 14), Period(D(2026, 1, 15), D(2026, 2, 15))),
        ("month", D(2026, 1, 15), D(2026, 2, 15), Period(D(2026, 2, 15), D(2026, 3, 15))),
        ("quarter", D(2026, 2, 15), D(2026, 5, 15), Period(D(2026, 5, 15), D(2026, 8, 15))),
        ("quarter", D(2026, 11, 30), D(2027, 2, 28), Period(D(2027, 2, 28), D(2027, 5, 30))),
        ("year", D(2026, 7, 1), D(2027, 6, 30), Period(D(2026, 7, 1), D(2027, 7, 1))),
    ],
)
def test_anniversary_periods(interval, start, on, expected):
    assert pc(start, interval, "anniversary", on) == expected


def test_month_end_anniversary_clamps_and_recovers():
    periods = periods_ending_between(start_date=D(2025, 1, 31), interval="month", billing_time="anniversary",
                                     after=None, through=D(2025, 6, 1))
    assert [p.start for p in periods] == [D(2025, 1, 31), D(2025, 2, 28), D(2025, 3, 31), D(2025, 4, 30)]
    assert periods[-1].end == D(2025, 5, 31)
    # leap year: Jan 31 → Feb 29
    assert pc(D(2024, 1, 31), "month", "anniversary", D(2024, 2, 29)) == Period(D(2024, 2, 29), D(2024, 3, 31))
    # the 30th: Feb 28, then back to the 30th
    assert pc(D(2025, 1, 30), "month", "anniversary", D(2025, 3, 1)) == Period(D(2025, 2, 28), D(2025, 3, 30))


def test_leap_day_start():
    # yearly from Feb 29: Feb 28 in common years, Feb 29 again in 2028
    assert pc(D(2024, 2, 29), "year", "anniversary", D(2025, 3, 1)) == Period(D(2025, 2, 28), D(2026, 2, 28))
    assert pc(D(2024, 2, 29), "year", "anniversary", D(2027, 12, 31)) == Period(D(2027, 2, 28), D(2028, 2, 29))
    assert pc(D(2024, 2, 29), "year", "anniversary", D(2028, 2, 29)) == Period(D(2028, 2, 29), D(2029, 2, 28))
    # monthly from Feb 29 anchors on the 29th
    assert pc(D(2024, 2, 29), "month", "anniversary", D(2024, 4, 1)) == Period(D(2024, 3, 29), D(2024, 4, 29))
    assert pc(D(2024, 2, 29), "month", "anniversary", D(2025, 2, 28)) == Period(D(2025, 2, 28), D(2025, 3, 29))
    # calendar: February of a leap year is 29 days
    feb = pc(D(2024, 2, 29), "month", "calendar", D(2024, 2, 29))
    assert feb == Period(D(2024, 2, 29), D(2024, 3, 1)) and feb.days == 1
    assert full_period_days(feb, interval="month") == 29


def test_full_period_days_is_the_proration_denominator():
    short = pc(D(2026, 1, 15), "month", "calendar", D(2026, 1, 15))
    assert (short.days, full_period_days(short, interval="month")) == (17, 31)
    q = pc(D(2026, 2, 15), "quarter", "calendar", D(2026, 2, 15))
    assert (q.days, full_period_days(q, interval="quarter")) == (45, 90)
    w = pc(D(2026, 1, 7), "week", "calendar", D(2026, 1, 7))
    assert (w.days, full_period_days(w, interval="week")) == (5, 7)
    y = pc(D(2027, 7, 1), "year", "calendar", D(2027, 7, 1))
    assert full_period_days(y, interval="year") == 365
    assert full_period_days(pc(D(2028, 3, 1), "year", "calendar", D(2028, 3, 1)), interval="year") == 366
    anniv = pc(D(2025, 1, 31), "month", "anniversary", D(2025, 2, 28))
    assert full_period_days(anniv, interval="month") == anniv.days == 31  # Feb 28 → Mar 31
    assert full_period_days(Period(D(2026, 1, 1), D(2026, 4, 1)), interval="quarter") == 90


def test_next_period_and_periods_ending_between_cursor():
    kw = dict(start_date=D(2026, 1, 15), interval="month", billing_time="calendar")
    first = pc(D(2026, 1, 15), "month", "calendar", D(2026, 1, 15))
    assert next_period(first, **kw) == Period(D(2026, 2, 1), D(2026, 3, 1))
    assert periods_ending_between(**kw, after=None, through=D(2026, 1, 31)) == []
    assert periods_ending_between(**kw, after=None, through=D(2026, 3, 1)) == [first, Period(D(2026, 2, 1), D(2026, 3, 1))]
    # the cursor: periods already billed through Feb 1 are not returned again
    assert periods_ending_between(**kw, after=D(2026, 2, 1), through=D(2026, 4, 1)) == [
        Period(D(2026, 2, 1), D(2026, 3, 1)), Period(D(2026, 3, 1), D(2026, 4, 1))]
    assert periods_ending_between(**kw, after=D(2026, 4, 1), through=D(2026, 4, 1)) == []


def test_invalid_inputs():
    with pytest.raises(ValueError):
        pc(D(2026, 1, 15), "month", "calendar", D(2026, 1, 14))
    with pytest.raises(ValueError):
        pc(D(2026, 1, 15), "fortnight", "calendar", D(2026, 1, 16))
    with pytest.raises(ValueError):
        pc(D(2026, 1, 15), "month", "whenever", D(2026, 1, 16))
    p = Period(D(2026, 1, 1), D(2026, 2, 1))
    assert p.contains(D(2026, 1, 1)) and p.contains(D(2026, 1, 31)) and not p.contains(D(2026, 2, 1))


def test_dst_bounds_los_angeles():
    # March 2026: DST starts Mar 8 (PST −8 → PDT −7); November: ends Nov 1.
    march = pc(D(2026, 1, 1), "month", "calendar", D(2026, 3, 10))
    start, end = march.bounds_utc("America/Los_Angeles")
    assert start == datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
    assert end == datetime(2026, 4, 1, 7, 0, tzinfo=timezone.utc)
    assert end - start == timedelta(days=31) - timedelta(hours=1)
    week = pc(D(2026, 1, 1), "week", "calendar", D(2026, 11, 1))  # Mon Oct 26 → Mon Nov 2
    start, end = week.bounds_utc("America/Los_Angeles")
    assert (start, end) == (datetime(2026, 10, 26, 7, tzinfo=timezone.utc), datetime(2026, 11, 2, 8, tzinfo=timezone.utc))
    assert end - start == timedelta(days=7, hours=1)


def test_dst_bounds_auckland():
    # NZ: DST ends Apr 5 2026 (+13 → +12), starts Sep 27 2026 (+12 → +13).
    april = pc(D(2026, 1, 1), "month", "calendar", D(2026, 4, 20))
    start, end = april.bounds_utc("Pacific/Auckland")
    assert start == datetime(2026, 3, 31, 11, 0, tzinfo=timezone.utc)  # Apr 1 00:00 NZDT (+13)
    assert end == datetime(2026, 4, 30, 12, 0, tzinfo=timezone.utc)  # May 1 00:00 NZST (+12)
    q = pc(D(2026, 1, 1), "quarter", "calendar", D(2026, 8, 1))
    start, end = q.bounds_utc("Pacific/Auckland")
    assert (start, end) == (datetime(2026, 6, 30, 12, tzinfo=timezone.utc), datetime(2026, 9, 30, 11, tzinfo=timezone.utc))
    # a calendar year in Auckland starts the previous UTC day
    year = pc(D(2026, 1, 1), "year", "calendar", D(2026, 6, 1))
    assert year.bounds_utc("Pacific/Auckland")[0] == datetime(2025, 12, 31, 11, tzinfo=timezone.utc)


def test_prorate_hand_computed():
    assert prorate(amount=Decimal("100"), days_used=15, days_in_period=30, currency="USD") == Decimal("50.00")
    assert prorate(amount=Decimal("300"), days_used=15, days_in_period=30, currency="USD") == Decimal("150.00")
    assert prorate(amount=Decimal("270"), days_used=45, days_in_period=90, currency="USD") == Decimal("135.00")
    # 100 × 17/31 = 54.8387… → 54.84 ; 10 × 1/8 = 1.25 exactly; 0.01 × 1/2 = 0.005 → half up 0.01
    assert prorate(amount=Decimal("100"), days_used=17, days_in_period=31, currency="USD") == Decimal("54.84")
    assert prorate(amount=Decimal("0.01"), days_used=1, days_in_period=2, currency="USD") == Decimal("0.01")
    assert prorate(amount=Decimal("1000"), days_used=1, days_in_period=3, currency="JPY") == Decimal("333")
    assert prorate(amount=Decimal("1"), days_used=1, days_in_period=3, currency="KWD") == Decimal("0.333")
    with pytest.raises(TypeError):
        prorate(amount=100.0, days_used=1, days_in_period=2, currency="USD")


@settings(max_examples=200, deadline=None)
@given(
    start=st.dates(min_value=D(2000, 1, 1), max_value=D(2060, 12, 31)),
    interval=st.sampled_from(["week", "month", "quarter", "year"]),
    billing_time=st.sampled_from(["calendar", "anniversary"]),
    span=st.integers(min_value=1, max_value=2000),
)
def test_periods_tile_time(start, interval, billing_time, span):
    through = start + timedelta(days=span)
    periods = periods_ending_between(start_date=start, interval=interval, billing_time=billing_time, after=None, through=through)
    cursor = start
    for period in periods:
        assert period.start == cursor  # no gap, no overlap
        assert period.days > 0
        assert period.days <= full_period_days(period, interval=interval) <= 366
        assert pc(start, interval, billing_time, period.start) == period
        assert pc(start, interval, billing_time, period.end - timedelta(days=1)) == period
        cursor = period.end
    assert cursor <= through
    assert pc(start, interval, billing_time, cursor).end > through  # nothing left out
    if billing_time == "anniversary" and periods:
        assert all(full_period_days(p, interval=interval) == p.days for p in periods)


@settings(max_examples=100, deadline=None)
@given(amount=st.decimals(min_value=0, max_value=10**9, places=4), total=st.integers(1, 366), data=st.data())
def test_prorate_parts_never_exceed_whole(amount, total, data):
    used = data.draw(st.integers(0, total))
    part = prorate(amount=amount, days_used=used, days_in_period=total, currency="USD")
    rest = prorate(amount=amount, days_used=total - used, days_in_period=total, currency="USD")
    whole = prorate(amount=amount, days_used=total, days_in_period=total, currency="USD")
    assert abs(part + rest - whole) <= Decimal("0.01")
