"""Invoicing's view of usage: grouped aggregation over many windows, late events.

`usage.selectors.usage_aggregate` takes at most one window per subscription per call; a chunk
may hold several windows of one subscription (a catch-up over several periods, or a period split
by a plan change), so the windows are dealt into rounds — round k holds each subscription's k-th
window — and each round is one grouped query. Almost always there is exactly one round."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Hashable, Sequence

from usage.rollups import usage_statistics_refresh as statistics_refresh  # noqa: F401
from usage.selectors import (BILLED, UsageAggregate, UsageWindow, late_events_unbilled, usage_aggregate,  # noqa: F401
                             usage_event_values)

ZERO = UsageAggregate(quantity=Decimal(0), event_count=0)


def aggregate_windows(windows: Sequence[tuple[Hashable, int, datetime, datetime]], *, metric_ids=None,
                      late: bool | str | None = False) -> dict[Hashable, dict[int, UsageAggregate]]:
    """windows: (key, subscription_id, start_utc, end_utc) → {key: {metric_id: UsageAggregate}}."""
    rounds: list[list[tuple]] = []
    seen: dict[int, int] = defaultdict(int)
    for window in windows:
        index = seen[window[1]]
        seen[window[1]] += 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(window)
    out: dict[Hashable, dict[int, UsageAggregate]] = {w[0]: {} for w in windows}
    metrics = sorted(metric_ids) if metric_ids is not None else None
    for round_windows in rounds:
        key_by_sub = {w[1]: w[0] for w in round_windows}
        result = usage_aggregate(windows=[UsageWindow(w[1], w[2], w[3]) for w in round_windows], metric_ids=metrics,
                                 late=late)
        for (sub_id, metric_id), agg in result.items():
            out[key_by_sub[sub_id]][metric_id] = agg
    return out


def event_values(*, subscription_id: int, metric_id: int, start: datetime, end: datetime,
                 late: bool | str | None = False) -> list[Decimal]:
    return usage_event_values(subscription_id=subscription_id, metric_id=metric_id, start=start, end=end, late=late)


def late_events(*, subscription_ids) -> list:
    return late_events_unbilled(subscription_ids=list(subscription_ids))


def subscriptions_with_unbilled_late_usage(*, subscription_ids=None) -> list[int]:
    from django.db import connection

    where, params = "", []
    if subscription_ids is not None:
        where, params = "AND subscription_id = ANY(%s::bigint[])", [list(subscription_ids)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT subscription_id FROM usage_event WHERE is_late AND late_billed_at IS NULL {where}",
                       params)
        return [row[0] for row in cursor.fetchall()]


def mark_late_billed(marks) -> None:
    """marks: [(event_ids, invoice)]; every event must still be unbilled (we hold the row locks)."""
    from usage.services import late_events_mark_billed

    for event_ids, invoice in marks:
        marked = late_events_mark_billed(event_ids=event_ids, invoice_id=invoice.pk)
        if marked != len(event_ids):
            raise RuntimeError(f"late events billed twice? marked {marked} of {len(event_ids)} for invoice {invoice.pk}")
