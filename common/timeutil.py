"""Customer-local calendar dates ↔ UTC instants. Periods are local dates, half-open [start, end);
events belong to the period containing their timestamp converted to the customer's timezone."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo


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
