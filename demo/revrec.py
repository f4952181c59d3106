"""Demo revenue: post the demo's documents to the journal and close every month before the
current one (DESIGN.md §8). Idempotent: closed months stay closed, nothing posts twice."""

from __future__ import annotations

from datetime import date

from revrec.close import revrec_close
from revrec.models import AccountingPeriod, ScheduleEntry
from revrec.postings import revrec_sync
from revrec.schedules import month_start, next_month


def demo_revrec_close(today: date) -> dict:
    revrec_sync()
    first = ScheduleEntry.objects.order_by("month").values_list("month", flat=True).first()
    closed = 0
    current = month_start(today)
    cursor = first
    while cursor is not None and cursor < current:
        if not AccountingPeriod.objects.filter(month=cursor).exists():
            revrec_close(month=cursor, actor="seed_demo")
            closed += 1
        cursor = next_month(cursor)
    return {"revenue months closed": closed}
