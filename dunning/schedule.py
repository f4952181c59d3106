"""The dunning schedule engine: pure functions from a first failure, a policy and a decline
classification to the instants of a case's steps (DESIGN.md §7). No database access.

- Retry `d` of the policy (days 1, 3, 6, 10 by default, at most `max_retries`, capped by the
  decline code's own cap) happens at the first instant at or after `first failure + d days` whose
  local hour (customer timezone) is the chosen retry hour: never before day `d`, always on the
  customer's best hour.
- `processing_error`-like codes make the first retry `first_retry_hours` after the failure.
- Pay-day alignment (`insufficient_funds`): a retry moves to the first pay day (the 1st, the 15th
  or the last business day of a month) on or after its date that is still inside the retry window
  and not already taken by another retry; a move is only ever later, never out of the window; when
  no pay day qualifies the retry stands.
- The retry window is `retry_window_days` after the first failure; nothing is retried after it.
"""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class PlannedStep:
    kind: str
    at: datetime
    rule: str
    inputs: dict = field(default_factory=dict)


def last_business_day(year: int, month: int) -> date:
    day = date(year, month, calendar.monthrange(year, month)[1])
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def pay_days(start: date, end: date) -> list[date]:
    """The 1st, the 15th and the last business day of each month, within [start, end]."""
    days = set()
    cursor = date(start.year, start.month, 1)
    while cursor <= end:
        for candidate in (cursor, cursor.replace(day=15), last_business_day(cursor.year, cursor.month)):
            if start <= candidate <= end:
                days.add(candidate)
        cursor = (cursor.replace(day=28) + timedelta(days=4)).replace(day=1)
    return sorted(days)


def at_local_hour(day: date, hour: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=tz)


def next_local_hour(earliest: datetime, hour: int, tz: ZoneInfo) -> datetime:
    """The first instant ≥ `earliest` whose local time is `hour`:00."""
    local = earliest.astimezone(tz)
    candidate = at_local_hour(local.date(), hour, tz)
    if candidate < earliest:
        candidate = at_local_hour(local.date() + timedelta(days=1), hour, tz)
    return candidate


def best_hour(success_instants: list[datetime], tz: ZoneInfo, default: int) -> tuple[int, dict]:
    """The local hour at which past payments succeeded most often (ties: the most recent one's hour),
    else `default`. Returns the hour and the history it used (for the audit)."""
    if not success_instants:
        return default, {"source": "default", "hour": default, "successes": 0}
    ordered = sorted(success_instants)
    hours = [instant.astimezone(tz).hour for instant in ordered]
    counts = Counter(hours)
    top = max(counts.values())
    tied = {h for h, c in counts.items() if c == top}
    hour = next(h for h in reversed(hours) if h in tied)
    return hour, {"source": "history", "hour": hour, "successes": len(hours),
                  "by_hour": {str(h): c for h, c in sorted(counts.items())}}


def retry_instants(*, first_failed_at: datetime, tz: ZoneInfo, days: list[int], max_retries: int,
                   window_days: int, hour: int, payday: bool = False, first_retry_hours: int | None = None,
                   min_wait_hours: int | None = None, fixed_time_of_day: bool = False) -> list[PlannedStep]:
    if fixed_time_of_day:
        return [PlannedStep(kind="retry", at=at, rule="retry_fixed_schedule", inputs={"day": day})
                for day, at in zip(sorted(set(days))[:max_retries],
                                   fixed_day_instants(first_failed_at=first_failed_at, days=sorted(set(days))[:max_retries]))
                if at <= first_failed_at + timedelta(days=window_days)]
    window_end = first_failed_at + timedelta(days=window_days)
    min_first = first_failed_at + timedelta(hours=min_wait_hours or 0)
    planned: list[PlannedStep] = []
    taken: set[date] = set()
    for index, day in enumerate(sorted(set(days))[:max_retries]):
        earliest = max(first_failed_at + timedelta(days=day), min_first)
        inputs = {"day": day, "hour": hour}
        if index == 0 and first_retry_hours:
            at = max(first_failed_at + timedelta(hours=first_retry_hours), min_first)
            inputs = {"day": day, "first_retry_hours": first_retry_hours}
        else:
            at = next_local_hour(earliest, hour, tz)
        rule = "retry_schedule"
        if payday:
            local_day = at.astimezone(tz).date()
            for candidate in pay_days(local_day, window_end.astimezone(tz).date()):
                moved = at_local_hour(candidate, hour, tz)
                if candidate in taken or moved < at or moved > window_end:
                    continue
                if candidate != local_day:
                    inputs = {**inputs, "pay_day": candidate.isoformat(), "moved_from": local_day.isoformat()}
                    at, rule = moved, "retry_schedule_pay_day"
                break
        if at > window_end:
            continue
        taken.add(at.astimezone(tz).date())
        planned.append(PlannedStep(kind="retry", at=at, rule=rule, inputs=inputs))
    planned.sort(key=lambda p: p.at)
    return planned


def fixed_day_instants(*, first_failed_at: datetime, days: list[int]) -> list[datetime]:
    """A plain schedule (the simulation's baseline): the same time of day, `d` days later."""
    return [first_failed_at + timedelta(days=d) for d in days]
