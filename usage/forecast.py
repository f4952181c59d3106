"""The open period's forecast path (DESIGN.md §12 "Forecasts"): expected usage per remaining day,
and the dates at which a tier bound or the minimum commitment will be crossed.

Run-rate per day, for additive metrics (count, sum):
- `weekday_run_rate` when the subscription has lived 28 complete days and the metric's usage in the
  last 28 days starts in their first week (so every weekday has three or four samples): a remaining
  day's usage is the mean of that weekday's daily usage over the last 28 complete days (days without
  usage count 0); today counts with the part of the day still ahead;
- `linear_run_rate` otherwise: the period's units so far ÷ its elapsed time, spread evenly.
max, latest and unique_count keep their value so far (nothing is added).

A crossing date is the customer-local day during which the projected cumulative usage (or amount)
reaches the bound; null when it stays below it by the period's end; `crossed` when the period is
already past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

WEEKDAY_HISTORY_DAYS = 28
MIN_USAGE_HISTORY_DAYS = 22  # the first usage day in the window is at least this many days back
_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class DayPath:
    """Projected cumulative units at the end of each remaining day (today first)."""

    days: list[date]
    cumulative: list[Decimal]
    method: str

    @property
    def final(self) -> Decimal | None:
        return self.cumulative[-1] if self.cumulative else None


def day_path(*, units: Decimal, today: date, today_left: Decimal, last_day: date, additive: bool,
             history: dict[date, Decimal] | None, history_days: int, elapsed_days: Decimal) -> DayPath:
    """Cumulative units day by day from today to `last_day` (inclusive).

    `today_left` is the fraction of today still ahead (0–1); `history` the daily quantities of the
    last 28 complete days (days without usage absent, None when the subscription is younger);
    `history_days` how far back the first of them is; `elapsed_days` the billable time elapsed in
    the period, in days."""
    days = [today + timedelta(days=k) for k in range((last_day - today).days + 1)] if today <= last_day else []
    if not additive or not days:
        return DayPath(days=days, cumulative=[units] * len(days), method="value_so_far")
    if history is not None and history_days >= MIN_USAGE_HISTORY_DAYS:
        start = today - timedelta(days=WEEKDAY_HISTORY_DAYS)
        by_weekday: dict[int, list[Decimal]] = {w: [] for w in range(7)}
        for k in range(WEEKDAY_HISTORY_DAYS):
            d = start + timedelta(days=k)
            by_weekday[d.weekday()].append(history.get(d, Decimal(0)))
        rate = {w: sum(v, Decimal(0)) / len(v) for w, v in by_weekday.items()}
        method = "weekday_run_rate"
    else:
        per_day = units / elapsed_days if elapsed_days > 0 else Decimal(0)
        rate = {w: per_day for w in range(7)}
        method = "linear_run_rate"
    cumulative, total = [], units
    for d in days:
        total += rate[d.weekday()] * (today_left if d == today else 1)
        cumulative.append(total)
    return DayPath(days=days, cumulative=cumulative, method=method)


def round_units(value: Decimal, aggregation: str) -> Decimal:
    if aggregation == "count":
        return value.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return value.quantize(_PLACES, rounding=ROUND_HALF_UP)


def crossing_day(days: list[date], values: list[Decimal], bound: Decimal, now_value: Decimal, *,
                 strict: bool = False) -> dict:
    """When the projected values reach `bound` (pass it, with `strict`: a tier's next unit is past
    its `up_to`): {"crossed": already there now, "date": the day it happens or None}."""
    def there(value):
        return value > bound if strict else value >= bound

    if there(now_value):
        return {"crossed": True, "date": None}
    for d, value in zip(days, values):
        if there(value):
            return {"crossed": False, "date": d.isoformat()}
    return {"crossed": False, "date": None}


def next_tier_bound(*, model: str, properties: dict, units: Decimal) -> Decimal | None:
    """The `up_to` of the tier the usage is in now (graduated/volume), None past the last bound."""
    if model not in ("graduated", "volume"):
        return None
    for tier in properties.get("tiers") or []:
        up_to = tier.get("up_to")
        if up_to is None:
            return None
        if Decimal(str(up_to)) > units:
            return Decimal(str(up_to))
    return None
