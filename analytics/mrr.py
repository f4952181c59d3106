"""Committed MRR and the MRR movement ledger (DESIGN.md §11).

Committed MRR of a subscription on a day
    = seats × base amount of its plan version in effect that day, quantized to the currency
      (what a base-fee invoice line would say), minus its recurring discounts (`forever` coupons and
      `repeating` ones still running, stacked by `catalog.discounts.compute_discounts`, the engine
      invoices use), normalized to a month (week × 52/12, quarter / 3, year / 12) and quantized
      once, half up, to the currency's minor unit;
    = 0 while trialing (before `trial_end_date`), before it starts, once canceled or ended.
`past_due` still counts (the customer is committed; dunning decides). Usage is never in MRR.

A customer's MRR for a month is the sum of its subscriptions' MRR at the end of the month's last
day, per currency (no conversion): a change effective on the 1st belongs to that new month.
Comparing consecutive month ends gives at most one movement per customer, currency and month:
`new` (first MRR ever), `reactivation` (MRR again after falling to zero), `expansion`,
`contraction`, `churn` (MRR falls to zero).

Sources, all already history: the rows of the subscription change ledger (`SubscriptionChange`)
that were not superseded, at their effective dates, the subscriptions' trial end, and the coupon
redemptions (start: the `on` date of their `coupon.applied` audit row; end: the customer-local
date they were removed or used up). A scheduled change (a downgrade, seat decrease or cancel at
period end) counts from its effective date whether or not the billing run has applied it yet: it
is committed, and the month it moves is the month of its effective date either way (so a month
already past never waits for a sweep, and future months show what is already scheduled).

Live and rebuilt ledgers are the same function: the subscription and coupon services publish
domain events (common.hooks); `analytics.apps` subscribes `ledger_refresh` to them, which
recomputes the touched customers' rows inside the caller's transaction; `analytics_rebuild` runs
the same recomputation over every customer. Concurrency: a refresh takes a transaction-scoped
advisory lock per customer (ascending ids), so two transactions touching one customer serialize
and the second recomputes from the first one's committed state (READ COMMITTED reads afresh per
statement); the unique (customer, currency, month) constraint backs it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from analytics.models import MovementKind, MrrMovement
from catalog.discounts import compute_discounts
from catalog.models import PlanVersion
from common.models import AuditEvent
from common.money import quantize_money
from common.timeutil import local_date
from customers.models import Customer
from invoicing.coupons import REDEMPTION_OBJECT_TYPES
from invoicing.models import CouponRedemption
from subscriptions.models import Subscription, SubscriptionChange

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
# Monthly normalization as an exact ratio (numerator, denominator) per plan interval.
MONTHLY_RATIO = {"week": (52, 12), "month": (1, 1), "quarter": (1, 3), "year": (1, 12)}
COUNTING_STATUSES = frozenset({"active", "past_due"})
RECURRING_DURATIONS = ("forever", "repeating")
ADVISORY_CLASS = 16016  # pg_advisory_xact_lock(class, customer_id): the MRR ledger of one customer
REFRESH_CHUNK = 500


# --- months -----------------------------------------------------------------------------------

def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def month_end(month: date) -> date:
    """The last day of `month` (a month is named by its first day)."""
    return add_months(month, 1) - timedelta(days=1)


# --- the pure engine --------------------------------------------------------------------------

@dataclass(frozen=True)
class VersionPrice:
    amount: Decimal
    plan_id: int
    interval: str


@dataclass
class SubscriptionHistory:
    """One subscription's change steps (applied or scheduled, not superseded) in order: (effective_date, plan_version_id,
    quantity, status), each field None when the step leaves it unchanged."""

    pk: int
    currency: str
    trial_end_date: date | None
    steps: list[tuple[date, int | None, int | None, str | None]] = field(default_factory=list)

    def state_on(self, day: date) -> tuple[int, int, str] | None:
        version = quantity = status = None
        seen = False
        for effective, v, q, s in self.steps:
            if effective > day:
                break
            seen = True
            version = v if v is not None else version
            quantity = q if q is not None else quantity
            status = s if s is not None else status
        if not seen or version is None or quantity is None:
            return None
        return version, quantity, status


@dataclass(frozen=True)
class CouponWindow:
    """A recurring redemption's coupon and the customer-local days it discounts: [start, end)."""

    coupon: object  # catalog.models.Coupon (kind, amount_off, currency, percent_off, code, name)
    subscription_id: int | None
    plan_ids: frozenset[int]
    start: date
    end: date | None
    order: tuple

    def covers(self, *, subscription_id: int, plan_id: int, currency: str, day: date) -> bool:
        if self.start > day or (self.end is not None and day >= self.end):
            return False
        if self.subscription_id is not None and self.subscription_id != subscription_id:
            return False
        if self.plan_ids and plan_id not in self.plan_ids:
            return False
        return not (self.coupon.kind == "fixed" and self.coupon.currency != currency)


def normalize_monthly(amount: Decimal, *, interval: str, currency: str) -> Decimal:
    numerator, denominator = MONTHLY_RATIO[interval]
    return quantize_money(amount * numerator / denominator, currency)


def subscription_mrr(history: SubscriptionHistory, day: date, *, versions: dict[int, VersionPrice],
                     coupons: list[CouponWindow]) -> Decimal:
    """Committed MRR of one subscription at the end of `day` (module docstring)."""
    state = history.state_on(day)
    if state is None:
        return ZERO
    version_id, quantity, status = state
    if status not in COUNTING_STATUSES:
        return ZERO
    if history.trial_end_date is not None and day < history.trial_end_date:
        return ZERO
    price = versions[version_id]
    fee = quantize_money(price.amount * quantity, history.currency)
    active = [w.coupon for w in coupons
              if w.covers(subscription_id=history.pk, plan_id=price.plan_id, currency=history.currency, day=day)]
    if active and fee > 0:
        fee -= sum((line.amount for line in compute_discounts(subtotal=fee, coupons=active, currency=history.currency)),
                   ZERO)
    return normalize_monthly(fee, interval=price.interval, currency=history.currency)


@dataclass(frozen=True)
class Movement:
    currency: str
    month: date
    kind: str
    amount: Decimal
    mrr_before: Decimal
    mrr_after: Decimal


def customer_movements(histories: list[SubscriptionHistory], coupons: list[CouponWindow], *,
                       versions: dict[int, VersionPrice]) -> list[Movement]:
    """Every movement of one customer: compare its MRR at consecutive month ends, per currency.
    MRR only changes in a month containing a change date, so only those month ends are evaluated."""
    by_currency: dict[str, list[SubscriptionHistory]] = defaultdict(list)
    for history in histories:
        by_currency[history.currency].append(history)
    coupon_dates = {d for w in coupons for d in (w.start, w.end) if d is not None}
    out: list[Movement] = []
    for currency, subs in sorted(by_currency.items()):
        months = sorted({month_start(d) for h in subs for d in [s[0] for s in h.steps] + [h.trial_end_date] if d}
                        | {month_start(d) for d in coupon_dates})
        previous, ever = ZERO, False
        for month in months:
            day = month_end(month)
            mrr = sum((subscription_mrr(h, day, versions=versions, coupons=coupons) for h in subs), ZERO)
            if mrr == previous:
                continue
            if previous == 0:
                kind = MovementKind.REACTIVATION if ever else MovementKind.NEW
            elif mrr == 0:
                kind = MovementKind.CHURN
            else:
                kind = MovementKind.EXPANSION if mrr > previous else MovementKind.CONTRACTION
            out.append(Movement(currency=currency, month=month, kind=kind, amount=abs(mrr - previous),
                                mrr_before=previous, mrr_after=mrr))
            ever = True
            previous = mrr
    return out


# --- loading the history ----------------------------------------------------------------------

def _load_inputs(customer_ids: list[int]) -> tuple[dict[int, list[SubscriptionHistory]], dict[int, list[CouponWindow]],
                                                    dict[int, VersionPrice]]:
    histories: dict[int, SubscriptionHistory] = {}
    by_customer: dict[int, list[SubscriptionHistory]] = defaultdict(list)
    rows = (Subscription.objects.filter(customer_id__in=customer_ids)
            .values("pk", "customer_id", "plan_version_id", "quantity", "status", "start_date", "trial_end_date",
                    "plan_version__plan__currency"))
    version_ids: set[int] = set()
    fallback: dict[int, tuple] = {}
    for row in rows:
        history = SubscriptionHistory(pk=row["pk"], currency=row["plan_version__plan__currency"],
                                      trial_end_date=row["trial_end_date"])
        histories[row["pk"]] = history
        by_customer[row["customer_id"]].append(history)
        fallback[row["pk"]] = (row["start_date"], row["plan_version_id"], row["quantity"], row["status"])
    changes = (SubscriptionChange.objects
               .filter(subscription_id__in=list(histories), superseded_at__isnull=True)
               .order_by("subscription_id", "effective_date", "applied_at", "pk")
               .values_list("subscription_id", "kind", "effective_date", "to_plan_version_id", "to_quantity", "to_status"))
    for sub_id, kind, effective, version_id, quantity, status in changes:
        history = histories[sub_id]
        if kind != "created" and not history.steps:
            history.steps.append(fallback[sub_id])  # a subscription older than its ledger: its row is the start
        history.steps.append((effective, version_id, quantity, status or None))
    for sub_id, history in histories.items():
        if not history.steps:
            history.steps.append(fallback[sub_id])
        version_ids.update(step[1] for step in history.steps if step[1] is not None)
    versions = {pk: VersionPrice(amount=amount, plan_id=plan_id, interval=interval)
                for pk, amount, plan_id, interval in PlanVersion.objects.filter(pk__in=version_ids)
                .values_list("pk", "amount", "plan_id", "plan__interval")}

    coupons: dict[int, list[CouponWindow]] = defaultdict(list)
    redemptions = list(CouponRedemption.objects.filter(customer_id__in=customer_ids, coupon__duration__in=RECURRING_DURATIONS)
                       .select_related("coupon").prefetch_related("coupon__applies_to_plans"))
    if redemptions:
        tz = dict(Customer.objects.filter(pk__in={r.customer_id for r in redemptions}).values_list("pk", "timezone"))
        applied_on = {int(object_id): inputs.get("on") for object_id, inputs in AuditEvent.objects.filter(
            action="coupon.applied", object_type__in=REDEMPTION_OBJECT_TYPES,
            object_id__in=[str(r.pk) for r in redemptions]).values_list("object_id", "inputs")}
        for r in redemptions:
            zone = tz[r.customer_id]
            start = applied_on.get(r.pk)
            start = date.fromisoformat(start) if start else local_date(r.created_at, zone)
            stops = [local_date(t, zone) for t in (r.removed_at, r.ended_at) if t is not None]
            coupons[r.customer_id].append(CouponWindow(
                coupon=r.coupon, subscription_id=r.subscription_id,
                plan_ids=frozenset(p.pk for p in r.coupon.applies_to_plans.all()),
                start=start, end=min(stops) if stops else None, order=(r.created_at, r.pk)))
        for windows in coupons.values():
            windows.sort(key=lambda w: w.order)  # application order, as invoices stack them
    return by_customer, coupons, versions


# --- writing the ledger -----------------------------------------------------------------------

def _lock_customers(customer_ids: list[int]) -> None:
    with connection.cursor() as cursor:
        for customer_id in customer_ids:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ADVISORY_CLASS, customer_id])


def ledger_refresh(*, customer_ids: Iterable[int]) -> int:
    """Recompute the movement rows of these customers from their history; returns rows written or
    deleted. Idempotent; runs in the caller's transaction when there is one."""
    ids = sorted({int(i) for i in customer_ids})
    changed = 0
    for offset in range(0, len(ids), REFRESH_CHUNK):
        chunk = ids[offset:offset + REFRESH_CHUNK]
        with transaction.atomic():
            _lock_customers(chunk)
            histories, coupons, versions = _load_inputs(chunk)
            desired = {}
            for customer_id in chunk:
                for m in customer_movements(histories.get(customer_id, []), coupons.get(customer_id, []), versions=versions):
                    desired[(customer_id, m.currency, m.month)] = m
            existing = {(r.customer_id, r.currency, r.month): r for r in MrrMovement.objects.filter(customer_id__in=chunk)}
            stale = [r.pk for key, r in existing.items() if key not in desired]
            updates, creates = [], []
            for key, m in desired.items():
                row = existing.get(key)
                values = dict(kind=m.kind, amount=m.amount, mrr_before=m.mrr_before, mrr_after=m.mrr_after)
                if row is None:
                    creates.append(MrrMovement(customer_id=key[0], currency=m.currency, month=m.month, **values))
                elif any(getattr(row, k) != v for k, v in values.items()):
                    for k, v in values.items():
                        setattr(row, k, v)
                    row.computed_at = timezone.now()
                    updates.append(row)
            if stale:
                MrrMovement.objects.filter(pk__in=stale).delete()
            if updates:
                MrrMovement.objects.bulk_update(updates, ["kind", "amount", "mrr_before", "mrr_after", "computed_at"])
            if creates:
                MrrMovement.objects.bulk_create(creates, batch_size=2000)
            changed += len(stale) + len(updates) + len(creates)
    return changed


def ledger_rebuild() -> int:
    """`analytics_rebuild`: recompute every customer's rows (and drop rows of customers with none)."""
    ids = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
    return ledger_refresh(customer_ids=ids)


# --- domain event handlers (subscribed in analytics.apps) --------------------------------------
# A failure here must not undo the subscription change that published the event: the refresh runs
# in its own savepoint (ledger_refresh's atomic block), is logged, and the nightly rebuild repairs it.

def _refresh_quietly(customer_ids) -> None:
    try:
        ledger_refresh(customer_ids=customer_ids)
    except Exception:  # noqa: BLE001
        logger.exception("MRR ledger refresh failed for customers %s; analytics_rebuild will repair it", customer_ids)


def on_subscription_events(events: list) -> None:
    ids = [e.object_id for e in events if e.object_type == "subscriptions.subscription"]
    if ids:
        _refresh_quietly(list(Subscription.objects.filter(pk__in=ids).values_list("customer_id", flat=True)))


def on_coupon_events(events: list) -> None:
    ids = [e.object_id for e in events if e.object_type in REDEMPTION_OBJECT_TYPES]
    if ids:
        _refresh_quietly(list(CouponRedemption.objects.filter(pk__in=ids).values_list("customer_id", flat=True)))
