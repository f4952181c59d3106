"""Late usage: marking late events billed (invoicing calls it in the invoice's transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from django.db import connection
from django.utils import timezone as dj_timezone


def late_events_mark_billed(*, event_ids: Sequence[int], invoice_id, billed_at: datetime | None = None) -> int:
    """Mark late events as billed on `invoice_id`; returns how many rows this call marked.

    Only still-unbilled rows are touched, so a rerun marks nothing twice. Call it in the invoice's
    transaction and compare the count with len(event_ids): a shortfall means another run billed them."""
    if not event_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE usage_event SET late_billed_at = %s, late_billed_invoice_id = %s
            WHERE id = ANY(%s::bigint[]) AND is_late AND late_billed_at IS NULL
            """,
            [billed_at or dj_timezone.now(), invoice_id, list(event_ids)],
        )
        return cursor.rowcount
