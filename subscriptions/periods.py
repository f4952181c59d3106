"""The period engine: pure functions over calendar dates (no database, no clock).

Periods are calendar dates in the customer's timezone, half-open ``[start, end)`` (DESIGN.md §2).

- ``calendar`` billing: periods sit on calendar boundaries — week = ISO week (Monday),
  month, quarter (Jan/Apr/Jul/Oct), year (Jan 1). The first period runs from the start date to
  the next boundary and is short (its base fee is prorated over the full calendar period).
- ``anniversary`` billing: period k is ``[start + k·interval, start + (k+1)·interval)``, computed
  from the start date each time (never by chaining), so month-end anchors clamp and recover:
  Jan 31 → Feb 28/29 → Mar 31 → Apr 30 → May 31.

Proration is by whole days: ``amount × days_used / days_in_period`` with an exact ratio, rounded
half up to the currency's minor unit once (``common.money.quantize_money``).
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction

from common.money import quantize_money
from common.timeutil import local_date_bounds_utc

INTERVALS = ("week", "month", "quarter", "year")
BILLING_TIMES = ("calendar", "anniversary")
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True, order=True)
class Period:
    """A billing period of local calendar dates, half-open ``[start, end)``."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty period [{self.start}, {self.end})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    @property
    def last_day(self) -> date:
        """The inclusive last day (what PDFs show)."""
        return self.end - timedelta(days=1)

    def bounds_utc(self, tz: str) -> tuple[datetime, datetime]:
        """UTC half-open instants [start 00:00 local, end 00:00 local) in the customer's timezone."""
        return local_date_bounds_utc(self.start, self.end, tz)

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def _check(interval: str, billing_time: str | None = None) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; expected one of {INTERVALS}")
    if billing_time is not None and billing_time not in BILLING_TIMES:
        raise ValueError(f"unknown billing_time {billing_time!r}; expected one of {BILLING_TIMES}")


def add_months(day: date, months: int, *, anchor_day: int | None = None) -> date:
    """``day`` moved by ``months``, on ``anchor_day`` (default day.day) clamped to the month's length."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    wanted = anchor_day if anchor_day is not None else day.day
    return date(year, month, min(wanted, _calendar.monthrange(year, month)[1]))


def _calendar_start(day: date, interval: str) -> date:
    """First day of the calendar period (of the given interval) containing ``day``."""
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    if interval == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def _step(day: date, interval: str, steps: int = 1) -> date:
    if interval == "week":
        return day + timedelta(days=7 * steps)
    return add_months(day, _MONTHS[interval] * steps)


def _anniversary_start(start_date: date, interval: str, k: int) -> date:
    if interval == "week":
        return start_date + timedelta(days=7 * k)
    return add_months(start_date, _MONTHS[interval] * k, anchor_day=start_date.day)


def _anniversary_index(start_date: date, interval: str, on: date) -> int:
    """k such that ``on`` lies in anniversary period k."""
    if interval == "week":
        return (on - start_date).days // 7
    step = _MONTHS[interval]
    months = (on.year - start_date.year) * 12 + (on.month - start_date.month)
    k = months // step
    while _anniversary_start(start_date, interval, k) > on:
        k -= 1
    while _anniversary_start(start_date, interval, k + 1) <= on:
        k += 1
    return k


def period_containing(*, start_date: date, interval: str, billing_time: str, on: date) -> Period:
    """The billing period containing local date ``on`` (``on >= start_date``)."""
    _check(interval, billing_time)
    if on < start_date:
        raise ValueError(f"{on} is before the subscription start {start_date}")
    if billing_time == "calendar":
        boundary = _calendar_start(on, interval)
        return Period(max(boundary, start_date), _step(boundary, interval))
    k = _anniversary_index(start_date, interval, on)
    return Period(_anniversary_start(start_date, interval, k), _anniversary_start(start_date, interval, k + 1))


def first_period(*, start_date: date, interval: str, billing_time: str) -> Period:
    return period_containing(start_date=start_date, interval=interval, billing_time=billing_time, on=start_date)


def next_period(period: Period, *, start_date: date, interval: str, billing_time: str) -> Period:
    """The period that starts where ``period`` ends."""
    return period_containing(start_date=start_date, interval=interval, billing_time=billing_time, on=period.end)


def periods_ending_between(*, start_date: date, interval: str, billing_time: str, after: date | None,
                           through: date) -> list[Period]:
    """Every period whose end lies in ``(after, through]``, in order; ``after=None`` starts at the first period.

    The billing run passes its cursor as ``after`` and the run date as ``through``."""
    _check(interval, billing_time)
    if after is None or after < start_date:
        period = first_period(start_date=start_date, interval=interval, billing_time=billing_time)
    else:
        period = period_containing(start_date=start_date, interval=interval, billing_time=billing_time, on=after)
    out: list[Period] = []
    while period.end <= through:
        if after is None or period.end > after:
            out.append(period)
        period = next_period(period, start_date=start_date, interval=interval, billing_time=billing_time)
    return out


def full_period_days(period: Period, *, interval: str) -> int:
    """Days of the FULL period ``period`` belongs to: the proration denominator.

    A short first calendar period ``[Jan 15, Feb 1)`` belongs to January (31 days). Anniversary
    periods are always full, so they are their own length. (A period ending on a calendar boundary
    is measured as the whole calendar period ending there; an anniversary period that ends on a
    calendar boundary starts on one too, so both readings agree.)"""
    _check(interval)
    boundary_start = _step(period.end, interval, -1)
    if _calendar_start(period.end, interval) == period.end and boundary_start <= period.start:
        return (period.end - boundary_start).days
    return period.days


def prorate(*, amount: Decimal, days_used: int, days_in_period: int, currency: str) -> Decimal:
    """``amount × days_used / days_in_period`` rounded half up to the currency's minor unit, once.

    The ratio is an exact Fraction; the division runs at 80 significant digits, far beyond any
    distance between a ratio with denominator ≤ 366 and a rounding midpoint, so the single
    ``quantize_money`` sees the exact value's rounding."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be Decimal, got {type(amount).__name__}")
    if days_in_period <= 0:
        raise ValueError("days_in_period must be positive")
    if days_used < 0:
        raise ValueError("days_used must not be negative")
    ratio = Fraction(days_used, days_in_period)
    with localcontext() as ctx:
        ctx.prec = 80
        exact = amount * ratio.numerator / ratio.denominator
    return quantize_money(exact, currency)
