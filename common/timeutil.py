"""Customer-local calendar dates ↔ UTC instants. Periods are local dates, half-open [start, end);
events belong to the period containing their timestamp converted to the customer's timezone."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

# Every business date and timestamp the API accepts lies in these bounds (400 naming the field
# otherwise): year 1 and 9999 overflow timezone arithmetic, and a billing run would bill every
# period since year 1. Generous for a billing system, and period ends stay far from datetime.max.
DATE_MIN = date(2000, 1, 1)
DATE_MAX = date(2099, 12, 31)


def date_in_bounds(day: date) -> bool:
    return DATE_MIN <= day <= DATE_MAX


def local_midnight_utc(day: date, tz: str) -> datetime:
    """The UTC instant at which `day` starts in `tz` (DST-aware: zoneinfo resolves the wall time)."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


def local_date_bounds_utc(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """UTC half-open bounds [start 00:00 local, end 00:00 local)."""
    return local_midnight_utc(start, tz), local_midnight_utc(end, tz)


def local_date(instant: datetime, tz: str) -> date:
    if instant.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return instant.astimezone(ZoneInfo(tz)).date()
