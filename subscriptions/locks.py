"""Subscription row locks: in pk order and WITHOUT joins, then the rows are read with their relations.

A FOR UPDATE joined to plan_version silently drops a row whose plan changed concurrently (PostgreSQL
re-checks the join against the old joined row: EvalPlanQual), which would skip a subscription."""

from __future__ import annotations

from common.locks import row_lock, rows_lock
from subscriptions.models import Subscription


def subscriptions_lock(ids) -> list[Subscription]:
    """Lock the subscriptions `ids` (pk order, no joins); return them with customer and plan read, in pk order."""
    locked = rows_lock(Subscription, ids)
    return list(Subscription.objects.select_related("customer", "plan_version__plan").filter(pk__in=locked)
                .order_by("pk"))


def subscription_lock(pk) -> Subscription:
    """Lock one subscription (no joins) and return it."""
    return row_lock(Subscription, pk)
