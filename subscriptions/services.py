"""Subscription lifecycle: create (with trial), activate at trial end, change plan, change seats,
cancel, end — each a short transaction that locks the subscription row (STYLE.md), checks the
source state (409 otherwise), saves with update_fields, writes an audit row and a ledger row.

Proration contract with invoicing (DESIGN.md §2, §5)
----------------------------------------------------
Let P = [S, E) be the billing period containing the change date D, and B the first billable day
of P (S, or the trial end if the trial ends inside P).

* The in-advance base fee of P is billed ONCE, for the plan version and seat count in effect on B
  (``fees.advance_fee_for_period``), for [B, E), prorated over ``full_period_days(P)``.
  Everything that changes after B is settled with ProrationItems, never by re-billing P:
  - plan change on an in-advance plan: CREDIT −prorate(old amount × seats, E−D, full) and, if the
    new version is in advance, CHARGE prorate(new amount × seats, E−D, full);
  - seat change on an in-advance plan: ±prorate(amount × |Δ seats|, E−D, full);
  - immediate cancel on an in-advance plan: CREDIT −prorate(amount × seats, E−D, full), only when
    P's fee was billed (``advance_billed_through > D``); otherwise nothing is credited and the
    final invoice charges [B, D). Invoicing scales every credit to what was actually charged for
    the fee (after its discount, DESIGN.md §5).
  A change on D == B creates items only if P's advance fee was already billed
  (``advance_billed_through > D``); otherwise the advance bill simply uses the new state.
  Changes during a trial (D < B) create no items: nothing was or will be billed for those days.
* In-arrears base fees (and all usage) are billed when the period closes, per segment of
  ``selectors.plan_segments`` (``fees.arrears_fee_segments``): the old version for [S, D),
  the new one for [D, E). So an in-arrears plan change produces no ProrationItems.
* Downgrades / seat decreases at period end are pending ledger rows (``applied_at`` null) with
  ``effective_date = E``; ``subscription_apply_pending_changes(subscription=…, on=E)`` (called by the
  billing run when it closes P, and by every service first) applies them. They never prorate.

Dates: ``on`` is the customer-local date a change takes effect (API ``date``), default today in
the customer's timezone. Immediate changes cannot be dated in the future (schedule with
``effective="period_end"``) nor before ``usage_billed_through`` (that period is invoiced: 409).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from celery import current_app
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Plan, PlanVersion
from catalog.services import plan_version_override_create
from common.audit import actor_label, audit_record
from common.errors import ApplicationError, ConflictError, NotFoundError
from customers.models import Customer
from subscriptions.locks import subscription_lock
from subscriptions.models import (
    LIVE_STATUSES,
    BillingTime,
    ChangeKind,
    ProrationItem,
    ProrationKind,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from subscriptions.periods import Period, full_period_days, prorate
from subscriptions.fees import subscription_first_billable_day
from subscriptions.selectors import (
    subscription_pending_changes,
    subscription_period_containing,
    subscription_today,
    subscriptions_trials_ending,
)

IMMEDIATELY = "immediately"
PERIOD_END = "period_end"
EFFECTIVE_CHOICES = (IMMEDIATELY, PERIOD_END)


# --- helpers ----------------------------------------------------------------------------------

def _check_timing(field: str, value: str | None, *, optional: bool = False) -> None:
    if (value is None and optional) or value in EFFECTIVE_CHOICES:
        return
    raise ApplicationError(f"{field} must be one of {EFFECTIVE_CHOICES}.", fields={field: ["invalid"]})


def _today(subscription: Subscription, today: date | None) -> date:
    return today or subscription_today(subscription=subscription)


def _require_live(subscription: Subscription, action: str) -> None:
    if subscription.status not in LIVE_STATUSES:
        raise ConflictError(
            f"Cannot {action} a {subscription.status} subscription.", code="invalid_state",
            fields={"status": [subscription.status]},
        )


def _require_no_scheduled_cancel(subscription: Subscription, action: str) -> None:
    if subscription.cancel_at_period_end:
        raise ConflictError(
            f"Cannot {action}: the subscription is scheduled to cancel on {subscription.end_date}.",
            code="cancellation_scheduled", fields={"status": ["cancel_at_period_end"]},
        )


def _check_change_date(subscription: Subscription, on: date, *, today: date, immediate: bool) -> None:
    if on < subscription.start_date:
        raise ApplicationError(f"date {on} is before the subscription start {subscription.start_date}.",
                               code="invalid_date", fields={"date": ["before start_date"]})
    if immediate and on > today:
        raise ApplicationError(
            f"An immediate change cannot be dated in the future ({on} > {today}); schedule it with effective=period_end.",
            code="invalid_date", fields={"date": ["in the future"]},
        )
    if subscription.usage_billed_through is not None and on < subscription.usage_billed_through:
        raise ConflictError(
            f"date {on} falls in a period already invoiced (billed through {subscription.usage_billed_through}); "
            "correct it with a credit note instead.",
            code="period_invoiced", fields={"date": ["already invoiced"]},
        )
    if subscription.end_date is not None and on >= subscription.end_date:
        raise ConflictError(f"date {on} is not before the subscription end {subscription.end_date}.",
                            code="after_end", fields={"date": ["after end_date"]})
    later = subscription.changes.filter(
        applied_at__isnull=False, superseded_at__isnull=True, effective_date__gt=on,
        kind__in=[ChangeKind.PLAN, ChangeKind.QUANTITY, ChangeKind.CANCEL],
    ).order_by("effective_date").first()
    if later is not None:
        raise ConflictError(f"A {later.get_kind_display()} effective {later.effective_date} is already recorded after {on}.",
                            code="later_change_exists", fields={"date": ["before a recorded change"]})


def _prorates(subscription: Subscription, period: Period, on: date) -> bool:
    """Does a change on `on` inside `period` settle in-advance fees with proration items?"""
    billable = subscription_first_billable_day(subscription=subscription, period=period)
    if on > billable:
        return True
    if on == billable:
        return subscription.advance_billed_through is not None and subscription.advance_billed_through > on
    return False  # still in the trial


def _supersede_pending(subscription: Subscription, *, kinds) -> list[int]:
    pending = list(subscription_pending_changes(subscription=subscription).filter(kind__in=list(kinds)))
    now = timezone.now()
    for change in pending:
        change.superseded_at = now
        change.save(update_fields=["superseded_at"])
    return [c.pk for c in pending]


def _proration_item(*, subscription: Subscription, change: SubscriptionChange, kind: str, version: PlanVersion,
                    seats: int, period: Period, on: date, description: str) -> ProrationItem | None:
    currency = subscription.customer.currency
    days_used = (period.end - on).days
    full = full_period_days(period, interval=version.interval)
    amount = prorate(amount=version.amount * seats, days_used=days_used, days_in_period=full, currency=currency)
    if amount == 0:
        return None
    if kind == ProrationKind.CREDIT:
        amount = -amount
    last_day = period.end - timedelta(days=1)
    return ProrationItem.objects.create(
        subscription=subscription, change=change, kind=kind, currency=currency, quantity=seats,
        unit_amount=version.amount, amount=amount, period_start=on, period_end=period.end, plan_version=version,
        description=f"{description} ({on.isoformat()} – {last_day.isoformat()}, {days_used}/{full} days)"[:255],
    )


def _record(subscription: Subscription, *, supersede: list[str], **ledger) -> tuple[SubscriptionChange, list[int]]:
    """Supersede pending changes of the given kinds, then write the new ledger row (pending until applied)."""
    replaced = _supersede_pending(subscription, kinds=supersede)
    if replaced:
        ledger.setdefault("inputs", {})["replaces"] = replaced
    change = _ledger(subscription, applied=False, **ledger)
    if replaced:
        SubscriptionChange.objects.filter(pk__in=replaced).update(superseded_by=change)
    return change, replaced


def _ledger(subscription: Subscription, *, kind: str, effective_date: date, actor: str, applied: bool,
            inputs: dict | None = None, **fields) -> SubscriptionChange:
    return SubscriptionChange.objects.create(
        subscription=subscription, kind=kind, effective_date=effective_date, actor=actor,
        applied_at=timezone.now() if applied else None, inputs=inputs or {}, **fields,
    )


def _resolve_plan_version(*, plan_code: str, customer: Customer, plan_version: PlanVersion | int | None = None) -> PlanVersion:
    plan = Plan.objects.filter(code=plan_code).first()
    if plan is None:
        raise NotFoundError(f"Plan '{plan_code}' not found.", fields={"plan": ["not found"]})
    if plan_version is None:
        version = plan.current_version
        if version is None:
            raise ApplicationError(f"Plan '{plan_code}' has no public version.", code="invalid", fields={"plan": ["no version"]})
    else:
        lookup = {"pk": plan_version.pk} if isinstance(plan_version, PlanVersion) else {"version": plan_version}
        version = plan.versions.filter(**lookup).first()
        if version is None:
            raise NotFoundError(f"Plan '{plan_code}' has no version {plan_version}.", fields={"plan_version": ["not found"]})
        if version.customer_id is not None and version.customer_id != customer.pk:
            raise ApplicationError(f"Version {version.version} of '{plan_code}' is private to another customer.",
                                   fields={"plan_version": ["private to another customer"]})
    if plan.currency != customer.currency:
        raise ApplicationError(
            f"Plan '{plan_code}' is billed in {plan.currency} but customer '{customer.external_id}' pays in {customer.currency}.",
            code="currency_mismatch", fields={"plan": [f"currency {plan.currency} differs from the customer's {customer.currency}"]},
        )
    return PlanVersion.objects.select_related("plan").get(pk=version.pk)


def _apply(subscription: Subscription, change: SubscriptionChange, *, now) -> list[str]:
    """Make the subscription row reflect `change`; returns the updated field names."""
    updated: list[str] = []
    if change.kind == ChangeKind.PLAN:
        change.from_plan_version = subscription.plan_version
        change.from_quantity = change.to_quantity = subscription.quantity
        subscription.plan_version = change.to_plan_version
        updated.append("plan_version")
    elif change.kind == ChangeKind.QUANTITY:
        change.from_quantity = subscription.quantity
        subscription.quantity = change.to_quantity
        updated.append("quantity")
    elif change.kind in (ChangeKind.CANCEL, ChangeKind.STATUS):
        change.from_status = subscription.status
        subscription.status = change.to_status
        updated.append("status")
        if change.kind == ChangeKind.CANCEL:
            subscription.cancel_at_period_end = False
            updated.append("cancel_at_period_end")
    change.applied_at = now
    change.save(update_fields=["applied_at", "from_plan_version", "from_quantity", "to_quantity", "from_status"])
    return updated


def _apply_due(subscription: Subscription, *, on: date, actor: str = "rule:pending_change_due") -> list[SubscriptionChange]:
    """Apply pending changes effective on or before `on` (the subscription row must be locked)."""
    now = timezone.now()
    applied = []
    for change in subscription_pending_changes(subscription=subscription).filter(effective_date__lte=on):
        updated = _apply(subscription, change, now=now)
        subscription.save(update_fields=[*updated, "updated_at"])
        audit_record(action=f"subscription.{change.kind}_applied", obj=subscription, actor=actor, rule="pending change due",
                     inputs={"change": change.pk, "effective_date": change.effective_date, "on": on})
        applied.append(change)
    return applied


INVOICE_NOW_TASK = "invoicing.tasks.invoice_subscription_now"


# --- create and trials ------------------------------------------------------------------------

def _invoice_closed_part_on_commit(subscription: Subscription, *, on: date, reason: str) -> None:
    """DESIGN §5: an immediate plan change or cancel closes the period on `on`; its usage (on the old
    plan), the proration items and any late usage go on one invoice right away. Queued after commit;
    if the queue is down the change still stands and the next billing run picks the items up.
    The task is named, not imported: invoicing sits above subscriptions (DESIGN.md §1)."""
    def enqueue():
        current_app.tasks[INVOICE_NOW_TASK].delay(subscription.pk, on.isoformat(), reason)

    transaction.on_commit(enqueue, robust=True)


def subscription_create(*, external_id: str, customer: Customer, plan_code: str, plan_version: PlanVersion | int | None = None,
                        start_date: date | None = None, billing_time: str = BillingTime.CALENDAR, quantity: int = 1,
                        trial_days: int | None = None, today: date | None = None, actor=None) -> Subscription:
    """Subscribe `customer` to plan `plan_code` (its current public version, or the given version /
    private override). A plan with trial days starts `trialing` until start + trial_days."""
    if billing_time not in BillingTime.values:
        raise ApplicationError(f"billing_time must be one of {BillingTime.values}.", fields={"billing_time": ["invalid"]})
    if quantity is None or quantity < 1:
        raise ApplicationError("quantity must be at least 1.", fields={"quantity": ["must be >= 1"]})
    version = _resolve_plan_version(plan_code=plan_code, customer=customer, plan_version=plan_version)
    today = today or subscription_today(subscription=Subscription(customer=customer))
    start_date = start_date or today
    trial_days = version.trial_days if trial_days is None else trial_days
    if trial_days < 0:
        raise ApplicationError("trial_days must not be negative.", fields={"trial_days": ["must be >= 0"]})
    trial_end = start_date + timedelta(days=trial_days) if trial_days else None
    status = SubscriptionStatus.TRIALING if trial_end and trial_end > today else SubscriptionStatus.ACTIVE
    label = actor_label(actor)
    if Subscription.objects.filter(external_id=external_id).exists():
        raise _duplicate(external_id)
    try:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                external_id=external_id, customer=customer, plan_version=version, quantity=quantity,
                billing_time=billing_time, status=status, start_date=start_date, trial_end_date=trial_end,
            )
            _ledger(subscription, kind=ChangeKind.CREATED, effective_date=start_date, actor=label, applied=True,
                    to_plan_version=version, to_quantity=quantity, to_status=status,
                    inputs={"plan": plan_code, "version": version.version, "trial_days": trial_days})
            audit_record(action="subscription.created", obj=subscription, actor=label,
                         inputs={"plan": plan_code, "version": version.version, "quantity": quantity,
                                 "start_date": start_date, "billing_time": billing_time, "trial_end_date": trial_end})
    except IntegrityError as exc:
        raise _duplicate(external_id) from exc
    return subscription


def _duplicate(external_id: str) -> ConflictError:
    return ConflictError(f"Subscription '{external_id}' already exists.", code="duplicate_external_id",
                         fields={"external_id": ["already exists"]})


def subscription_activate(*, subscription: Subscription, on: date | None = None, today: date | None = None,
                          actor=None) -> Subscription:
    """trialing → active. On or after the trial end date it is the scheduled activation; earlier it
    ends the trial early (trial_end_date moves to `on`)."""
    label = actor_label(actor)
    with transaction.atomic():
        sub = subscription_lock(subscription.pk)
        today = _today(sub, today)
        on = on or today
        if sub.status != SubscriptionStatus.TRIALING:
            raise ConflictError(f"Only a trialing subscription can be activated (it is {sub.status}).",
                                code="invalid_state", fields={"status": [sub.status]})
        if on > today:
            raise ApplicationError("Activation cannot be dated in the future.", fields={"date": ["in the future"]})
        updated = ["status", "updated_at"]
        effective = sub.trial_end_date or on
        if sub.trial_end_date is None or on < sub.trial_end_date:
            sub.trial_end_date = max(on, sub.start_date)
            effective = sub.trial_end_date
            updated.append("trial_end_date")
        sub.status = SubscriptionStatus.ACTIVE
        sub.save(update_fields=updated)
        _ledger(sub, kind=ChangeKind.STATUS, effective_date=effective, actor=label, applied=True,
                from_status=SubscriptionStatus.TRIALING, to_status=SubscriptionStatus.ACTIVE, inputs={"on": on})
        audit_record(action="subscription.activated", obj=sub, actor=label, rule="trial ended",
                     inputs={"trial_end_date": sub.trial_end_date, "on": on})
    return sub


def subscription_activate_trials(*, today: date | None = None, actor="rule:trial_end") -> int:
    """Sweep: every trialing subscription whose trial has ended becomes active. `today` defaults to
    each customer's local date. Safe to rerun and to run twice at once."""
    horizon = today or (timezone.now().date() + timedelta(days=1))
    activated = 0
    for sub in subscriptions_trials_ending(today=horizon).select_related("customer"):
        local_today = today or subscription_today(subscription=sub)
        if sub.trial_end_date > local_today:
            continue
        try:
            subscription_activate(subscription=sub, on=sub.trial_end_date, today=local_today, actor=actor)
        except ConflictError:
            continue  # another worker got there first
        activated += 1
    return activated


# --- plan and seat changes --------------------------------------------------------------------

@dataclass
class ChangeResult:
    subscription: Subscription
    change: SubscriptionChange
    proration_items: list[ProrationItem]

    @property
    def applied(self) -> bool:
        return self.change.applied_at is not None


def subscription_change_plan(*, subscription: Subscription, plan_code: str, plan_version: PlanVersion | int | None = None,
                             effective: str | None = None, on: date | None = None, today: date | None = None,
                             actor=None) -> ChangeResult:
    """Move to another plan (same interval and currency). Default: an upgrade (base amount per seat
    not lower) takes effect immediately with proration; a downgrade at the end of the period
    containing `on`. A new plan change replaces a scheduled one."""
    _check_timing("effective", effective, optional=True)
    label = actor_label(actor)
    with transaction.atomic():
        sub = subscription_lock(subscription.pk)
        today = _today(sub, today)
        _apply_due(sub, on=today)
        _require_live(sub, "change the plan of")
        _require_no_scheduled_cancel(sub, "change the plan")
        new = _resolve_plan_version(plan_code=plan_code, customer=sub.customer, plan_version=plan_version)
        old = sub.plan_version
        if new.plan.interval != old.plan.interval:
            raise ApplicationError(
                f"Plan '{plan_code}' bills per {new.plan.interval}, the subscription per {old.plan.interval}; "
                "changing the interval needs a new subscription.", code="interval_mismatch",
                fields={"plan": ["different interval"]},
            )
        pending = subscription_pending_changes(subscription=sub).filter(kind=ChangeKind.PLAN).first()
        if new.pk == old.pk and pending is None:
            raise ApplicationError(f"The subscription is already on {new}.", code="no_change", fields={"plan": ["unchanged"]})
        on = on or today
        rule = "upgrade" if new.amount >= old.amount else "downgrade"
        mode = effective or (IMMEDIATELY if rule == "upgrade" else PERIOD_END)
        if new.pk == old.pk:
            mode = IMMEDIATELY  # reverting a scheduled change: nothing to prorate
        _check_change_date(sub, on, today=today, immediate=mode == IMMEDIATELY)
        period = subscription_period_containing(subscription=sub, on=on)
        effective_date = on if mode == IMMEDIATELY else period.end
        change, _ = _record(
            sub, supersede=[ChangeKind.PLAN], kind=ChangeKind.PLAN, effective_date=effective_date, actor=label,
            from_plan_version=old, to_plan_version=new, from_quantity=sub.quantity, to_quantity=sub.quantity,
            inputs={"plan": plan_code, "version": new.version, "effective": mode, "date": on, "rule": rule,
                    "period": [period.start, period.end]},
        )
        items: list[ProrationItem] = []
        if mode == IMMEDIATELY:
            if new.pk != old.pk and _prorates(sub, period, on):
                if old.pay_in_advance:
                    items.append(_proration_item(subscription=sub, change=change, kind=ProrationKind.CREDIT, version=old,
                                                 seats=sub.quantity, period=period, on=on,
                                                 description=f"Unused time on {old.plan.name} v{old.version} × {sub.quantity}"))
                if new.pay_in_advance:
                    items.append(_proration_item(subscription=sub, change=change, kind=ProrationKind.CHARGE, version=new,
                                                 seats=sub.quantity, period=period, on=on,
                                                 description=f"Remaining time on {new.plan.name} v{new.version} × {sub.quantity}"))
            updated = _apply(sub, change, now=timezone.now())
            sub.save(update_fields=[*updated, "updated_at"])
            if new.pk != old.pk:
                _invoice_closed_part_on_commit(sub, on=on, reason="plan_change")
        items = [i for i in items if i is not None]
        audit_record(
            action="subscription.plan_changed" if mode == IMMEDIATELY else "subscription.plan_change_scheduled",
            obj=sub, actor=label, rule=f"{rule}: {mode}",
            inputs={"from": str(old), "to": str(new), "effective_date": effective_date, "date": on,
                    "proration": [str(i.amount) for i in items]},
        )
    return ChangeResult(subscription=sub, change=change, proration_items=items)


def subscription_change_quantity(*, subscription: Subscription, quantity: int, effective: str | None = None,
                                 on: date | None = None, today: date | None = None, actor=None) -> ChangeResult:
    """Change the seat count. Default: an increase takes effect immediately (prorated charge for the
    added seats), a decrease at the end of the period containing `on`."""
    _check_timing("effective", effective, optional=True)
    if quantity is None or quantity < 1:
        raise ApplicationError("quantity must be at least 1.", fields={"quantity": ["must be >= 1"]})
    label = actor_label(actor)
    with transaction.atomic():
        sub = subscription_lock(subscription.pk)
        today = _today(sub, today)
        _apply_due(sub, on=today)
        _require_live(sub, "change the seats of")
        _require_no_scheduled_cancel(sub, "change the seats")
        pending = subscription_pending_changes(subscription=sub).filter(kind=ChangeKind.QUANTITY).first()
        old_qty = sub.quantity
        if quantity == old_qty and pending is None:
            raise ApplicationError(f"The subscription already has {quantity} seats.", code="no_change",
                                   fields={"quantity": ["unchanged"]})
        on = on or today
        rule = "increase" if quantity >= old_qty else "decrease"
        mode = effective or (IMMEDIATELY if rule == "increase" else PERIOD_END)
        if quantity == old_qty:
            mode = IMMEDIATELY
        _check_change_date(sub, on, today=today, immediate=mode == IMMEDIATELY)
        period = subscription_period_containing(subscription=sub, on=on)
        effective_date = on if mode == IMMEDIATELY else period.end
        change, _ = _record(
            sub, supersede=[ChangeKind.QUANTITY], kind=ChangeKind.QUANTITY, effective_date=effective_date, actor=label,
            from_quantity=old_qty, to_quantity=quantity,
            inputs={"quantity": quantity, "effective": mode, "date": on, "rule": rule, "period": [period.start, period.end]},
        )
        items: list[ProrationItem] = []
        version = sub.plan_version
        if mode == IMMEDIATELY:
            delta = quantity - old_qty
            if delta and version.pay_in_advance and _prorates(sub, period, on):
                kind = ProrationKind.CHARGE if delta > 0 else ProrationKind.CREDIT
                what = "Added" if delta > 0 else "Removed"
                items.append(_proration_item(subscription=sub, change=change, kind=kind, version=version, seats=abs(delta),
                                             period=period, on=on,
                                             description=f"{what} {abs(delta)} seat(s) on {version.plan.name} v{version.version}"))
            updated = _apply(sub, change, now=timezone.now())
            sub.save(update_fields=[*updated, "updated_at"])
        items = [i for i in items if i is not None]
        audit_record(
            action="subscription.quantity_changed" if mode == IMMEDIATELY else "subscription.quantity_change_scheduled",
            obj=sub, actor=label, rule=f"{rule}: {mode}",
            inputs={"from": old_qty, "to": quantity, "effective_date": effective_date, "date": on,
                    "proration": [str(i.amount) for i in items]},
        )
    return ChangeResult(subscription=sub, change=change, proration_items=items)


def subscription_apply_pending_changes(*, subscription: Subscription, on: date, actor="rule:period_close") -> list[SubscriptionChange]:
    """Apply every scheduled change effective on or before `on` (downgrades, seat decreases and
    cancellations at period end). The billing run calls this with the closing period's end before
    billing the next period. Idempotent."""
    with transaction.atomic():
        sub = subscription_lock(subscription.pk)
        return _apply_due(sub, on=on, actor=actor_label(actor))


def subscription_apply_due_changes(*, today: date | None = None) -> int:
    """Sweep for the daily beat: apply pending changes that have come due."""
    horizon = today or (timezone.now().date() + timedelta(days=1))
    ids = (SubscriptionChange.objects.filter(applied_at__isnull=True, superseded_at__isnull=True, effective_date__lte=horizon)
           .values_list("subscription_id", flat=True).distinct())
    count = 0
    for sub in Subscription.objects.filter(pk__in=list(ids)).select_related("customer").order_by("pk"):
        count += len(subscription_apply_pending_changes(subscription=sub, on=today or subscription_today(subscription=sub)))
    return count


# --- cancel and end ---------------------------------------------------------------------------

def subscription_cancel(*, subscription: Subscription, at: str = PERIOD_END, on: date | None = None,
                        today: date | None = None, actor=None) -> ChangeResult:
    """Cancel at the end of the period containing `on` (default: status stays until then,
    cancel_at_period_end, end_date = period end), or immediately (status canceled, end_date = `on`,
    credit for the unused in-advance fee)."""
    _check_timing("at", at)
    label = actor_label(actor)
    with transaction.atomic():
        sub = subscription_lock(subscription.pk)
        today = _today(sub, today)
        _apply_due(sub, on=today)
        _require_live(sub, "cancel")
        on = on or today
        now = timezone.now()
        if at == PERIOD_END:
            _require_no_scheduled_cancel(sub, "cancel again")
            _check_change_date(sub, on, today=today, immediate=False)
            period = subscription_period_containing(subscription=sub, on=on)
            change, _ = _record(sub, supersede=[ChangeKind.PLAN, ChangeKind.QUANTITY], kind=ChangeKind.CANCEL,
                                effective_date=period.end, actor=label, from_status=sub.status,
                                to_status=SubscriptionStatus.CANCELED, inputs={"at": at, "date": on, "period": [period.start, period.end]})
            sub.cancel_at_period_end = True
            sub.end_date = period.end
            sub.canceled_at = now
            sub.save(update_fields=["cancel_at_period_end", "end_date", "canceled_at", "updated_at"])
            items: list[ProrationItem] = []
        else:
            if sub.cancel_at_period_end:
                # An immediate cancel overrides the scheduled one: the end moves earlier.
                sub.end_date = None
            _check_change_date(sub, on, today=today, immediate=True)
            period = subscription_period_containing(subscription=sub, on=on)
            change, _ = _record(sub, supersede=[ChangeKind.PLAN, ChangeKind.QUANTITY, ChangeKind.CANCEL],
                                kind=ChangeKind.CANCEL, effective_date=on, actor=label, from_status=sub.status,
                                to_status=SubscriptionStatus.CANCELED, inputs={"at": at, "date": on, "period": [period.start, period.end]})
            items = []
            version = sub.plan_version
            # Credit only a fee that was billed (DESIGN.md §5): when the period's in-advance fee has
            # not been invoiced yet, the final invoice charges the days used instead (invoicing).
            # A change earlier in the period that settled it with proration items (before any run
            # billed the fee) keeps that contract: the fee is billed for the whole period and the
            # unused time of the plan in force is credited.
            fee_billed = ((sub.advance_billed_through is not None and sub.advance_billed_through > on)
                          or ProrationItem.objects.filter(subscription=sub, period_end=period.end,
                                                          period_start__lte=on).exists())
            if version.pay_in_advance and fee_billed and _prorates(sub, period, on):
                items.append(_proration_item(subscription=sub, change=change, kind=ProrationKind.CREDIT, version=version,
                                             seats=sub.quantity, period=period, on=on,
                                             description=f"Unused time on {version.plan.name} v{version.version} × {sub.quantity} (canceled)"))
            items = [i for i in items if i is not None]
            updated = _apply(sub, change, now=now)
            sub.end_date = on
            sub.canceled_at = now
            sub.save(update_fields=[*updated, "end_date", "canceled_at", "updated_at"])
            _invoice_closed_part_on_commit(sub, on=on, reason="cancel_immediately")
        audit_record(action="subscription.canceled" if at == IMMEDIATELY else "subscription.cancel_scheduled",
                     obj=sub, actor=label, rule=f"cancel: {at}",
                     inputs={"date": on, "end_date": sub.end_date, "proration": [str(i.amount) for i in items]})
    return ChangeResult(subscription=sub, change=change, proration_items=items)


def subscription_end(*, subscription: Subscription, on: date | None = None, today: date | None = None,
                     actor=None) -> Subscription:
    """A live subscription reached the end of its term: status ended, end_date = `on` (default
    today). No credit is issued (use an immediate cancel for that)."""
    label = actor_label(actor)
    with transaction.atomic():
        sub = subscription_lock(subscription.pk)
        today = _today(sub, today)
        _require_live(sub, "end")
        on = on or today
        if sub.cancel_at_period_end:
            sub.end_date = None
        _check_change_date(sub, on, today=today, immediate=False)
        now = timezone.now()
        change, _ = _record(sub, supersede=[ChangeKind.PLAN, ChangeKind.QUANTITY, ChangeKind.CANCEL, ChangeKind.STATUS],
                            kind=ChangeKind.STATUS, effective_date=on, actor=label, from_status=sub.status,
                            to_status=SubscriptionStatus.ENDED, inputs={"date": on})
        updated = _apply(sub, change, now=now)
        sub.end_date = on
        sub.cancel_at_period_end = False
        sub.save(update_fields=[*updated, "end_date", "cancel_at_period_end", "updated_at"])
        audit_record(action="subscription.ended", obj=sub, actor=label, inputs={"date": on})
    return sub


def subscription_set_past_due(*, subscription: Subscription, past_due: bool, actor="rule:dunning", reason: str = "") -> Subscription:
    """active ↔ past_due, for dunning (a failed payment / the debt settled)."""
    source, target = ((SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE) if past_due
                      else (SubscriptionStatus.PAST_DUE, SubscriptionStatus.ACTIVE))
    label = actor_label(actor)
    with transaction.atomic():
        sub = subscription_lock(subscription.pk)
        if sub.status == target:
            return sub
        if sub.status != source:
            raise ConflictError(f"Cannot move a {sub.status} subscription to {target}.", code="invalid_state",
                                fields={"status": [sub.status]})
        sub.status = target
        sub.save(update_fields=["status", "updated_at"])
        _ledger(sub, kind=ChangeKind.STATUS, effective_date=_today(sub, None), actor=label, applied=True,
                from_status=source, to_status=target, inputs={"reason": reason})
        audit_record(action=f"subscription.{target}", obj=sub, actor=label, rule=reason)
    return sub


def subscription_price_override(*, subscription: Subscription, amount=None, charges=None, on: date | None = None,
                                today: date | None = None, actor=None) -> ChangeResult:
    """Customer-specific prices (API.md "Credits, overrides"): a private plan version for this
    subscription's customer, derived from the version it is on (`amount` and/or the full
    `charges` list replace the base's), in force from `on` (default today). It is a plan change to
    that version effective immediately on `on`, so the period engine and proration apply as for any
    change and usage is priced by the version in force during its service period."""
    if amount is None and charges is None:
        raise ApplicationError("Give the new amount and/or the charges.", fields={"amount": ["amount or charges required"]})
    version = plan_version_override_create(base_version=subscription.plan_version, customer=subscription.customer,
                                           amount=amount, charges=charges, actor=actor)
    return subscription_change_plan(subscription=subscription, plan_code=version.plan.code, plan_version=version,
                                    effective=IMMEDIATELY, on=on, today=today, actor=actor)
