"""Reads over subscriptions: lookups, the current period, and which plan version / seat count applied
over a date window (reconstructed from the change ledger, so invoicing can split usage windows)."""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from catalog.models import PlanVersion
from common.errors import NotFoundError
from common.timeutil import local_date
from subscriptions.models import ChangeKind, Subscription, SubscriptionChange, SubscriptionStatus
from subscriptions.periods import Period, first_period, next_period, period_containing


def subscription_today(*, subscription: Subscription) -> date:
    """Today's date in the customer's timezone."""
    return local_date(timezone.now(), subscription.customer.timezone)


def subscription_get(*, external_id: str) -> Subscription:
    subscription = (
        Subscription.objects.select_related("customer", "plan_version__plan").filter(external_id=external_id).first()
    )
    if subscription is None:
        raise NotFoundError(f"Subscription '{external_id}' not found.", fields={"subscription": ["not found"]})
    return subscription


PENDING_CHANGES_ATTR = "pending_changes_prefetched"


def subscriptions_list(*, customer: str | None = None, status: str | None = None, plan: str | None = None) -> QuerySet[Subscription]:
    """Filter by customer external id, status (comma-separated allowed) and plan code. Pending changes
    come prefetched (one query per page, not per row) as ``PENDING_CHANGES_ATTR``."""
    pending = _pending(SubscriptionChange.objects.all()).select_related("from_plan_version__plan", "to_plan_version__plan")
    qs = (Subscription.objects.select_related("customer", "plan_version__plan").order_by("external_id")
          .prefetch_related(Prefetch("changes", queryset=pending, to_attr=PENDING_CHANGES_ATTR)))
    if customer:
        qs = qs.filter(customer__external_id=customer)
    if status:
        qs = qs.filter(status__in=[s.strip() for s in status.split(",") if s.strip()])
    if plan:
        qs = qs.filter(plan_version__plan__code=plan)
    return qs


def subscription_period_containing(*, subscription: Subscription, on: date) -> Period:
    return period_containing(
        start_date=subscription.start_date, interval=subscription.interval,
        billing_time=subscription.billing_time, on=on,
    )


def subscription_current_period(*, subscription: Subscription, today: date | None = None) -> Period:
    """The period containing ``today`` (customer-local). Before the start it is the first period;
    after the end date it is the last period served."""
    on = today or subscription_today(subscription=subscription)
    on = max(on, subscription.start_date)
    if subscription.end_date is not None and subscription.end_date > subscription.start_date:
        on = min(on, subscription.end_date - timedelta(days=1))
    return subscription_period_containing(subscription=subscription, on=on)


def _pending(changes: QuerySet[SubscriptionChange]) -> QuerySet[SubscriptionChange]:
    return changes.filter(applied_at__isnull=True, superseded_at__isnull=True).order_by("effective_date", "pk")


def subscription_pending_changes(*, subscription: Subscription) -> QuerySet[SubscriptionChange]:
    return _pending(subscription.changes.all())


def subscription_timeline(*, subscription: Subscription, periods_ahead: int = 1, limit: int = 60) -> list[Period]:
    """Periods from the start through the current one (plus ``periods_ahead``), capped at the end date."""
    kwargs = dict(start_date=subscription.start_date, interval=subscription.interval, billing_time=subscription.billing_time)
    current = subscription_current_period(subscription=subscription)
    out: list[Period] = []
    period = first_period(**kwargs)
    ahead = 0
    while len(out) < limit:
        if subscription.end_date is not None and period.start >= subscription.end_date:
            break
        out.append(period)
        if period.start >= current.start:
            if ahead >= periods_ahead:
                break
            ahead += 1
        period = next_period(period, **kwargs)
    return out[-limit:]


Segment = tuple[date, date, PlanVersion, int]


def plan_segments(*, subscription: Subscription, start: date, end: date) -> list[Segment]:
    """Which plan version and seat count applied over ``[start, end)``, as ordered, non-overlapping
    ``(seg_start, seg_end, plan_version, quantity)`` tuples, clipped to the days served
    (``[start_date, end_date)``) and merged where nothing changed.

    Built from the ledger (created row, then plan/seat changes by effective date, including
    scheduled ones not yet applied, excluding superseded ones), so a period closed by an immediate
    upgrade on D rates ``[S, D)`` on the old version and ``[D, E)`` on the new one."""
    lo = max(start, subscription.start_date)
    hi = end if subscription.end_date is None else min(end, subscription.end_date)
    if hi <= lo:
        return []
    changes = list(
        subscription.changes.filter(superseded_at__isnull=True, effective_date__lt=hi)
        .select_related("from_plan_version__plan", "to_plan_version__plan")
        .order_by("effective_date", "pk")
    )
    created = next((c for c in changes if c.kind == ChangeKind.CREATED), None)
    moves = [c for c in changes if c.kind in (ChangeKind.PLAN, ChangeKind.QUANTITY)]
    if created is not None and created.to_plan_version is not None:
        version, quantity = created.to_plan_version, created.to_quantity or subscription.quantity
    elif moves:
        first_plan = next((c for c in moves if c.kind == ChangeKind.PLAN), None)
        first_qty = next((c for c in moves if c.kind == ChangeKind.QUANTITY), None)
        version = first_plan.from_plan_version if first_plan and first_plan.from_plan_version else subscription.plan_version
        quantity = first_qty.from_quantity if first_qty and first_qty.from_quantity else subscription.quantity
    else:
        version, quantity = subscription.plan_version, subscription.quantity

    # Walk the ledger: state before `lo`, then each change inside [lo, hi).
    points: list[tuple[date, PlanVersion, int]] = []
    for change in moves:
        if change.effective_date <= lo:
            version, quantity = _apply(change, version, quantity)
        else:
            if not points:
                points.append((lo, version, quantity))
            version, quantity = _apply(change, version, quantity)
            points.append((change.effective_date, version, quantity))
    if not points:
        points.append((lo, version, quantity))

    segments: list[Segment] = []
    for index, (seg_start, seg_version, seg_quantity) in enumerate(points):
        seg_end = points[index + 1][0] if index + 1 < len(points) else hi
        if seg_end <= seg_start:
            continue
        if segments and segments[-1][2].pk == seg_version.pk and segments[-1][3] == seg_quantity and segments[-1][1] == seg_start:
            segments[-1] = (segments[-1][0], seg_end, seg_version, seg_quantity)
        else:
            segments.append((seg_start, seg_end, seg_version, seg_quantity))
    return segments


def _apply(change: SubscriptionChange, version: PlanVersion, quantity: int) -> tuple[PlanVersion, int]:
    if change.kind == ChangeKind.PLAN and change.to_plan_version is not None:
        version = change.to_plan_version
    if change.kind == ChangeKind.QUANTITY and change.to_quantity:
        quantity = change.to_quantity
    return version, quantity


def subscriptions_trials_ending(*, today: date) -> QuerySet[Subscription]:
    return Subscription.objects.filter(status=SubscriptionStatus.TRIALING, trial_end_date__lte=today).order_by("pk")
