"""The billing run: close every period that ends on or before `as_of`, bill in-advance fees of
periods that start on or before it, and create one invoice per subscription per billing date.

Set-based (DESIGN.md §6): subscriptions are scanned as plain values, the due ones processed in
chunks; each chunk locks its subscription rows (SELECT … FOR UPDATE, pk order), aggregates the
usage of every window in the chunk with one grouped query (`usage.selectors.usage_aggregate`),
rates in memory, and inserts invoices and lines with bulk_create, advancing the billing cursors in
the same transaction. Idempotent and concurrency-safe:

- the cursors are re-read under the row lock, so a second run (or a second process) waiting on the
  lock finds them advanced and does nothing;
- the partial unique constraint on (subscription, billing_date) for cycle invoices backs it in the
  database;
- each chunk commits alone, so a crashed run leaves whole invoices or none and the next run
  resumes from the cursors.
"""

from __future__ import annotations

import logging
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from catalog.models import Charge, PlanVersion
from catalog.rating import format_price, format_quantity, minimum_commitment_true_up, needs_event_values, rate_charge
from common.audit import actor_label, audit_bulk_create
from common.models import AuditEvent
from common.money import quantize_money
from common.timeutil import local_date, local_date_bounds_utc
from invoicing import review, usage_source
from invoicing.models import (
    BillingRun,
    BillingRunStatus,
    Invoice,
    InvoiceLine,
    InvoiceReason,
    InvoiceStatus,
    LineKind,
)
from invoicing.schedule import BillingDate, Span, billing_schedule, billing_start, closures_until, full_days
from invoicing.services import invoices_auto_finalize
from invoicing.totals import TotalsPreview
from subscriptions.models import ChangeKind, ProrationItem, Subscription, SubscriptionChange
from subscriptions.periods import period_containing, prorate

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
ZERO = Decimal(0)
RULE_CYCLE = "billing_run.period_close"
RULE_CHANGE = "subscription_change.invoice_now"
RULE_ZERO_USAGE = "zero_usage_after_usage"
USAGE_KINDS = (LineKind.USAGE, LineKind.LATE_USAGE)


# --- public API ------------------------------------------------------------------------------------

@dataclass
class RunResult:
    subscriptions_examined: int = 0
    subscriptions_due: int = 0
    invoices_created: int = 0
    lines_created: int = 0
    invoices_flagged: int = 0
    invoice_ids: list = field(default_factory=list)
    errors: list = field(default_factory=list)


def billing_run(*, as_of: date, actor=None, now: datetime | None = None, auto_finalize: bool = True,
                chunk_size: int = CHUNK_SIZE, subscription_ids=None) -> BillingRun:
    """Run billing up to `as_of` (inclusive) and record it as a BillingRun.

    `now` (the hourly beat passes it) additionally holds back periods whose end has not yet
    passed in the customer's timezone. With `auto_finalize`, drafts whose grace period has passed
    by `as_of` are finalized afterwards (flagged drafts wait for review)."""
    run = BillingRun.objects.create(as_of=as_of, triggered_by=actor_label(actor))
    result = RunResult()
    try:
        due = subscriptions_due(as_of=as_of, now=now, subscription_ids=subscription_ids)
        result.subscriptions_examined, due_ids = due
        result.subscriptions_due = len(due_ids)
        for start in range(0, len(due_ids), chunk_size):
            _bill_chunk_safely(due_ids[start:start + chunk_size], as_of=as_of, now=now, run=run, result=result)
        finalized = 0
        if auto_finalize and result.invoice_ids:
            finalized = invoices_auto_finalize(today=as_of, invoice_ids=result.invoice_ids).finalized
        run.status = BillingRunStatus.PARTIAL if result.errors else BillingRunStatus.SUCCEEDED
        run.invoices_finalized = finalized
    except Exception as exc:  # the run row must say it failed; the chunks already committed stay
        logger.exception("billing run %s failed", run.pk)
        result.errors.append({"subscription": None, "error": repr(exc), "trace": traceback.format_exc(limit=5)})
        run.status = BillingRunStatus.FAILED
        _finish(run, result)
        raise
    _finish(run, result)
    return run


def _finish(run: BillingRun, result: RunResult) -> None:
    run.subscriptions_examined = result.subscriptions_examined
    run.subscriptions_due = result.subscriptions_due
    run.invoices_created = result.invoices_created
    run.lines_created = result.lines_created
    run.invoices_flagged = result.invoices_flagged
    run.error_count = len(result.errors)
    run.errors = result.errors[:200]
    run.finished_at = timezone.now()
    run.save()


def subscriptions_due(*, as_of: date, now: datetime | None = None, subscription_ids=None) -> tuple[int, list[int]]:
    """(examined, ids due) — a read-only scan over plain values; no locks, no per-row queries.
    Late usage waiting to be billed makes a subscription due as well."""
    qs = Subscription.objects.filter(start_date__lte=as_of).filter(
        Q(end_date__isnull=True)
        | Q(usage_billed_through__isnull=True)
        | Q(usage_billed_through__lt=F("end_date"))
        | Q(plan_version__pay_in_advance=True, advance_billed_through__isnull=True)
        | Q(plan_version__pay_in_advance=True, advance_billed_through__lt=F("end_date"))
    )
    if subscription_ids is not None:
        qs = qs.filter(pk__in=list(subscription_ids))
    rows = qs.values_list(
        "pk", "start_date", "trial_end_date", "end_date", "usage_billed_through", "advance_billed_through",
        "billing_time", "plan_version__plan__interval", "plan_version__pay_in_advance", "customer__timezone",
    ).order_by("pk")
    examined, due = 0, []
    for pk, start, trial_end, end, usage_bt, advance_bt, billing_time, interval, in_advance, tz in rows.iterator(chunk_size=5000):
        examined += 1
        schedule = billing_schedule(
            start_date=start, trial_end_date=trial_end, end_date=end, usage_billed_through=usage_bt,
            advance_billed_through=advance_bt, interval=interval, billing_time=billing_time,
            pay_in_advance=in_advance, as_of=_effective_as_of(as_of, now, tz))
        if schedule.bills:
            due.append(pk)
    late = set(usage_source.subscriptions_with_unbilled_late_usage(subscription_ids=subscription_ids))
    if late:
        due = sorted(set(due) | late)
    return examined, due


def invoice_subscription_now(*, subscription: Subscription, on_date: date, reason: str = "", actor=None,
                             auto_finalize: bool = True) -> Invoice | None:
    """Invoice right away what an immediate plan/seat change or cancellation on `on_date` closes:
    the usage up to `on_date` (split by plan segments, so the closed part is rated on the old plan),
    an in-arrears base fee for those days, the pending proration items and late usage, on one
    invoice; `usage_billed_through` moves to `on_date`. Returns None when there is nothing to bill."""
    with transaction.atomic():
        sub = _lock_subscriptions([subscription.pk])[0]
        interval = sub.plan_version.plan.interval
        spans = closures_until(start_date=sub.start_date, trial_end_date=sub.trial_end_date, end_date=sub.end_date,
                               usage_billed_through=sub.usage_billed_through, interval=interval,
                               billing_time=sub.billing_time, on=on_date)
        bill = BillingDate(on_date, closures=spans)
        builder = _ChunkBuilder(subs=[sub], as_of=on_date, reason=InvoiceReason.SUBSCRIPTION_CHANGE, run=None,
                                rule=RULE_CHANGE, actor=actor_label(actor), extra_inputs={"reason": reason})
        plans = {sub.pk: _Plan(sub=sub, bills=[bill], usage_billed_through=spans[-1].end if spans else None,
                               advance_billed_through=None)}
        invoices = builder.build(plans)
        if not invoices:
            return None
        builder.insert()
        invoice = invoices[0]
    if auto_finalize:
        invoices_auto_finalize(today=on_date, invoice_ids=[invoice.pk])
        invoice.refresh_from_db()
    return invoice


# --- internals -----------------------------------------------------------------------------------

def _effective_as_of(as_of: date, now: datetime | None, tz: str) -> date:
    """With `now`, a period closes only once its end (local midnight) has passed in `tz`."""
    return as_of if now is None else min(as_of, local_date(now, tz))


def _lock_subscriptions(ids) -> list[Subscription]:
    """Lock in pk order WITHOUT joins, then read the rows with their relations. A FOR UPDATE joined to
    plan_version silently drops a row whose plan changed concurrently (PostgreSQL rechecks the join
    against the old joined row), which would skip a subscription."""
    locked = list(Subscription.objects.select_for_update().filter(pk__in=list(ids)).order_by("pk").values_list("pk", flat=True))
    return list(Subscription.objects.select_related("customer", "plan_version__plan").filter(pk__in=locked).order_by("pk"))


@dataclass
class _Plan:
    sub: Subscription
    bills: list[BillingDate]
    usage_billed_through: date | None
    advance_billed_through: date | None
    reason: str | None = None


def _finished(sub: Subscription) -> bool:
    return sub.end_date is not None and (sub.usage_billed_through or sub.start_date) >= sub.end_date


def _bill_chunk_safely(ids: list[int], *, as_of, now, run, result: RunResult) -> None:
    try:
        _bill_chunk(ids, as_of=as_of, now=now, run=run, result=result)
    except IntegrityError:
        # Should not happen under the row locks; isolate the offending subscription.
        logger.warning("billing run %s: integrity error in a chunk of %d; retrying one by one", run.pk, len(ids))
        for pk in ids:
            try:
                _bill_chunk([pk], as_of=as_of, now=now, run=run, result=result)
            except Exception as exc:  # noqa: BLE001 — recorded on the run, the rest go on
                result.errors.append({"subscription": pk, "error": repr(exc)})


def _bill_chunk(ids: list[int], *, as_of: date, now, run: BillingRun, result: RunResult) -> None:
    with transaction.atomic():
        subs = _lock_subscriptions(ids)
        _apply_pending_changes(subs, as_of=as_of, now=now)
        plans: dict[int, _Plan] = {}
        for sub in subs:
            schedule = billing_schedule(
                start_date=sub.start_date, trial_end_date=sub.trial_end_date, end_date=sub.end_date,
                usage_billed_through=sub.usage_billed_through, advance_billed_through=sub.advance_billed_through,
                interval=sub.plan_version.plan.interval, billing_time=sub.billing_time,
                pay_in_advance=sub.plan_version.pay_in_advance,
                as_of=_effective_as_of(as_of, now, sub.customer.timezone))
            plans[sub.pk] = _Plan(sub=sub, bills=schedule.bills, usage_billed_through=schedule.usage_billed_through,
                                  advance_billed_through=schedule.advance_billed_through)
        # Late usage goes on the next invoice; a subscription that has ended gets none, so its late
        # usage is invoiced on its own.
        idle_finished = [p.sub.pk for p in plans.values() if not p.bills and _finished(p.sub)]
        if idle_finished:
            for pk in usage_source.subscriptions_with_unbilled_late_usage(subscription_ids=idle_finished):
                sub = plans[pk].sub
                plans[pk].bills = [BillingDate(_effective_as_of(as_of, now, sub.customer.timezone))]
                plans[pk].reason = InvoiceReason.LATE_USAGE
        builder = _ChunkBuilder(subs=subs, as_of=as_of, reason=InvoiceReason.SUBSCRIPTION_CYCLE, run=run,
                                rule=RULE_CYCLE, actor=run.triggered_by, extra_inputs={"billing_run": run.pk})
        invoices = builder.build(plans, errors=result.errors)
        builder.insert()
    result.invoices_created += len(invoices)
    result.lines_created += builder.lines_created
    result.invoices_flagged += builder.flagged
    result.invoice_ids.extend(i.pk for i in invoices)


def _apply_pending_changes(subs: list[Subscription], *, as_of: date, now) -> None:
    """A period-end downgrade (or other scheduled change) takes effect when its period closes."""
    pending = set(
        SubscriptionChange.objects.filter(subscription__in=subs, applied_at__isnull=True, superseded_at__isnull=True,
                                          effective_date__lte=as_of)
        .values_list("subscription_id", flat=True)
    )
    if not pending:
        return
    from subscriptions.services import subscription_apply_pending_changes

    for sub in subs:
        if sub.pk in pending:
            on = _effective_as_of(as_of, now, sub.customer.timezone)
            subscription_apply_pending_changes(subscription=sub, on=on)
            sub.refresh_from_db()


class _ChunkBuilder:
    """Builds the invoices of a chunk of locked subscriptions in memory, then inserts them in bulk."""

    def __init__(self, *, subs, as_of, reason, run, rule, actor, extra_inputs):
        self.subs = subs
        self.as_of = as_of
        self.reason = reason
        self.run = run
        self.rule = rule
        self.actor = actor
        self.extra_inputs = extra_inputs
        self.invoices: list[Invoice] = []
        self.lines: list[InvoiceLine] = []
        self.audits: list[AuditEvent] = []
        self.proration_items: list[tuple[ProrationItem, InvoiceLine]] = []
        self.late_marks: list[tuple[list[int], Invoice]] = []
        self.cursor_updates: list[Subscription] = []
        self.lines_created = 0
        self.flagged = 0

    # -- building ------------------------------------------------------------------------------

    def build(self, plans: dict[int, _Plan], *, errors: list | None = None) -> list[Invoice]:
        ids = list(plans)
        changes = _changes_by_subscription(ids)
        charges = _charges_by_version()
        # Segments: which plan version/seats applied when, per closure and advance.
        work: list[tuple[_Plan, BillingDate, list, tuple | None]] = []
        for plan in plans.values():
            sub = plan.sub
            slow = _needs_segments(sub, changes.get(sub.pk, ()))
            for bill in plan.bills:
                closure_segments = []
                for span in bill.closures:
                    segs = (_segments(sub, span.start, span.end) if slow
                            else [(span.start, span.end, sub.plan_version, sub.quantity)])
                    closure_segments.append((span, segs))
                advance_segment = None
                if bill.advance is not None:
                    segs = (_segments(sub, bill.advance.start, bill.advance.end) if slow
                            else [(bill.advance.start, bill.advance.end, sub.plan_version, sub.quantity)])
                    advance_segment = segs[0] if segs else None
                work.append((plan, bill, closure_segments, advance_segment))

        # Usage windows: one per (closure, run of one plan version); rated on that version.
        windows: dict[tuple, tuple] = {}
        for plan, bill, closure_segments, _ in work:
            for span, segs in closure_segments:
                for start, end, version in _merge_by_version(segs):
                    windows[(plan.sub.pk, start, end)] = (plan.sub, start, end, version)
        versions = {w[3].pk for w in windows.values()}
        charges.load(versions)
        metric_ids = {c.billable_metric_id for v in versions for c in charges.get(v)}
        usage = usage_source.aggregate_windows(
            [(key, sub.pk, *local_date_bounds_utc(start, end, sub.customer.timezone))
             for key, (sub, start, end, _) in windows.items()],
            metric_ids=metric_ids or None,
        ) if windows and metric_ids else {}

        prorations = _pending_prorations(ids)
        late = self._late_usage(plans, changes, charges, errors)
        previous = _previous_invoices(ids)

        failed: set[int] = set()
        for plan, bill, closure_segments, advance_segment in work:
            sub = plan.sub
            if sub.pk in failed:
                continue
            try:
                self._invoice_for(sub, bill, closure_segments, advance_segment, charges, usage, prorations, late,
                                  previous, reason=plan.reason or self.reason)
            except Exception as exc:  # noqa: BLE001 — one bad subscription does not stop the run
                if errors is None:
                    raise
                logger.exception("billing subscription %s on %s failed", sub.pk, bill.date)
                errors.append({"subscription": sub.external_id, "billing_date": bill.date.isoformat(), "error": repr(exc)})
                plan.usage_billed_through = plan.advance_billed_through = None
                self._drop(sub)
                failed.add(sub.pk)
        self._review()
        for plan in plans.values():
            sub = plan.sub
            if sub.pk in failed:
                continue
            changed = False
            if plan.usage_billed_through and plan.usage_billed_through != sub.usage_billed_through:
                sub.usage_billed_through = plan.usage_billed_through
                changed = True
            if plan.advance_billed_through and plan.advance_billed_through != sub.advance_billed_through:
                sub.advance_billed_through = plan.advance_billed_through
                changed = True
            if changed:
                sub.updated_at = timezone.now()
                self.cursor_updates.append(sub)
        return self.invoices

    def _review(self) -> None:
        """Hand the chunk's drafts to the registered review checks (invoicing/review.py)."""
        if not self.invoices:
            return
        by_invoice: dict = defaultdict(list)
        for line in self.lines:
            by_invoice[line.invoice.pk].append(line)
        subs = {s.pk: s for s in self.subs}
        drafts = [review.DraftForReview(invoice=inv, subscription=subs.get(inv.subscription_id), lines=by_invoice[inv.pk],
                                        usage_total=sum((ln.amount for ln in by_invoice[inv.pk] if ln.kind in USAGE_KINDS),
                                                        ZERO))
                  for inv in self.invoices]
        found = review.run_checks(drafts)
        for invoice in self.invoices:
            extra = found.get(invoice.pk)
            if not extra:
                continue
            if not invoice.needs_review:
                self.flagged += 1
            invoice.needs_review = True
            invoice.review_reasons = [*invoice.review_reasons, *extra]
            for reason in extra:
                self.audits.append(_audit("invoice.flagged", invoice, actor=self.actor, rule=reason["rule"], inputs=reason))

    def _drop(self, sub):
        dropped = {inv.pk for inv in self.invoices if inv.subscription_id == sub.pk}
        self.invoices = [i for i in self.invoices if i.pk not in dropped]
        self.lines = [ln for ln in self.lines if ln.invoice_id not in dropped]
        self.audits = [a for a in self.audits if a.object_id not in {str(d) for d in dropped}]
        self.proration_items = [(p, ln) for p, ln in self.proration_items if ln.invoice_id not in dropped]
        self.late_marks = [(e, inv) for e, inv in self.late_marks if inv.pk not in dropped]

    def _invoice_for(self, sub, bill: BillingDate, closure_segments, advance_segment, charges, usage, prorations,
                     late, previous, *, reason) -> Invoice | None:
        currency = sub.plan_version.plan.currency
        interval = sub.plan_version.plan.interval
        invoice = Invoice(
            customer_id=sub.customer_id, subscription_id=sub.pk, currency=currency, billing_date=bill.date,
            issue_date=bill.date, due_date=bill.date + timedelta(days=sub.customer.net_terms_days),
            reason=reason, billing_run=self.run, status=InvoiceStatus.DRAFT,
        )
        lines: list[InvoiceLine] = []

        def add(**kwargs) -> InvoiceLine:
            line = InvoiceLine(invoice=invoice, position=len(lines), **kwargs)
            lines.append(line)
            return line

        # 1. In-advance base fee of the period that starts on this date.
        if bill.advance is not None and advance_segment is not None:
            _, _, version, quantity = advance_segment
            if version.amount and version.pay_in_advance:
                self._base_fee_line(add, bill.advance, version, quantity, bill.advance.start, bill.advance.end,
                                    currency, interval, advance=True)

        # 2. The closed period(s): arrears base fee, usage per charge, minimum commitment.
        has_usage_lines = False
        for span, segs in closure_segments:
            base_nominal: dict[int, Decimal] = defaultdict(lambda: ZERO)
            for start, end, version, quantity in segs:
                amount_fee = prorate(amount=version.amount * quantity, days_used=(end - start).days,
                                     days_in_period=full_days(span, interval=interval), currency=currency)
                base_nominal[version.pk] += amount_fee
                if not version.pay_in_advance and version.amount:
                    self._base_fee_line(add, span, version, quantity, start, end, currency, interval, advance=False)
            for start, end, version in _merge_by_version(segs):
                usage_total = ZERO
                for charge in charges.get(version.pk):
                    agg = usage.get((sub.pk, start, end), {}).get(charge.billable_metric_id)
                    quantity = agg.quantity if agg else ZERO
                    count = agg.event_count if agg else 0
                    values = None
                    if needs_event_values(model=charge.model, properties=charge.properties):
                        b0, b1 = local_date_bounds_utc(start, end, sub.customer.timezone)
                        values = usage_source.event_values(subscription_id=sub.pk, metric_id=charge.billable_metric_id,
                                                           start=b0, end=b1)
                    rated = rate_charge(charge=charge, quantity=quantity, currency=currency, event_count=count,
                                        event_values=values)
                    usage_total += rated.amount
                    has_usage_lines = True
                    add(kind=LineKind.USAGE, description=_charge_description(charge, rated), charge=charge,
                        billable_metric_id=charge.billable_metric_id, plan_version=version, quantity=quantity,
                        unit_amount=rated.unit_amount, amount=rated.amount, period_start=start, period_end=end,
                        tiers=[t.as_dict() for t in rated.tiers], metadata={"event_count": count, "model": charge.model})
                if version.minimum_commitment:
                    days = (end - start).days
                    full = full_days(span, interval=interval)
                    minimum = (version.minimum_commitment if days == full else
                               prorate(amount=version.minimum_commitment, days_used=days, days_in_period=full,
                                       currency=currency))
                    subtotal = base_nominal[version.pk] + usage_total
                    true_up = minimum_commitment_true_up(minimum=minimum, subtotal=subtotal, currency=currency)
                    if true_up > 0:
                        add(kind=LineKind.MINIMUM_COMMITMENT, plan_version=version, quantity=Decimal(1),
                            unit_amount=true_up, amount=true_up, period_start=start, period_end=end,
                            description=f"Minimum commitment true-up ({format_price(minimum, currency)} minimum, "
                                        f"{format_price(quantize_money(subtotal, currency), currency)} billed)",
                            metadata={"minimum": str(minimum), "subtotal": str(subtotal)})

        # 3. Pending proration items (plan/seat changes, immediate cancellations).
        for item in [p for p in prorations.get(sub.pk, []) if p.period_start <= bill.date]:
            line = add(kind=LineKind.PRORATION, description=item.description, plan_version_id=item.plan_version_id,
                       quantity=Decimal(item.quantity), unit_amount=item.unit_amount,
                       amount=quantize_money(item.amount, currency), period_start=item.period_start,
                       period_end=item.period_end, metadata={"proration_item": item.pk, "proration_kind": item.kind})
            self.proration_items.append((item, line))
            prorations[sub.pk].remove(item)

        # 4. Late usage: events that arrived after their period was invoiced.
        for fields, event_ids in late.pop(sub.pk, []):
            add(kind=LineKind.LATE_USAGE, **fields)
            self.late_marks.append((event_ids, invoice))

        if not lines:
            return None  # nothing billable (a free plan): the cursors still move

        # Draft preview of coupons, tax and credits (finalize recomputes and consumes them under locks).
        if getattr(self, "totals_preview", None) is None:
            self.totals_preview = TotalsPreview({s.customer_id for s in self.subs})
        totals = self.totals_preview.totals(invoice=invoice, customer=sub.customer, subscription=sub,
                                            lines=[(ln.amount, ln.taxable) for ln in lines])
        for name, value in totals.as_fields().items():
            setattr(invoice, name, value)
        if bill.closures or bill.advance:
            invoice.period_start, invoice.period_end = bill.period
        else:
            invoice.period_start = min((ln.period_start for ln in lines if ln.period_start), default=None)
            invoice.period_end = max((ln.period_end for ln in lines if ln.period_end), default=None)

        # Built-in review check against the subscription's previous invoice; the total-spike check
        # (invoice_spike) and usage anomalies come from the registered review checks (invoicing/review.py).
        usage_lines = [ln for ln in lines if ln.kind in USAGE_KINDS]
        has_usage = any(ln.quantity > 0 for ln in usage_lines)
        prev = previous.get(sub.pk)
        reasons = []
        if prev is not None:
            prev_total, prev_had_usage, prev_id, prev_days = prev
            if has_usage_lines and not has_usage and prev_had_usage:
                reasons.append({"rule": RULE_ZERO_USAGE, "usage_lines": len(usage_lines),
                                "previous_invoice": str(prev_id)})
        if reason == InvoiceReason.SUBSCRIPTION_CYCLE:
            span = (invoice.period_end - invoice.period_start).days if invoice.period_start and invoice.period_end else 0
            previous[sub.pk] = (invoice.total, has_usage, invoice.pk, span)
        invoice.needs_review = bool(reasons)
        invoice.review_reasons = reasons

        self.invoices.append(invoice)
        self.lines.extend(lines)
        inputs = {
            **self.extra_inputs, "as_of": self.as_of.isoformat(), "billing_date": bill.date.isoformat(),
            "subscription": sub.external_id, "plan_version": sub.plan_version_id,
            "closed": [[s.start.isoformat(), s.end.isoformat()] for s in bill.closures],
            "advance": [bill.advance.start.isoformat(), bill.advance.end.isoformat()] if bill.advance else None,
            "lines": len(lines), "total": str(invoice.total),
        }
        self.audits.append(_audit("invoice.generated", invoice, actor=self.actor, rule=self.rule, inputs=inputs))
        for reason in reasons:
            self.audits.append(_audit("invoice.flagged", invoice, actor=self.actor, rule=reason["rule"], inputs=reason))
        if reasons:
            self.flagged += 1
        return invoice

    def _late_usage(self, plans: dict[int, "_Plan"], changes, charges: "_Charges", errors) -> dict[int, list]:
        """Late events (arrived after their period was invoiced) → `late_usage` line fields per
        subscription, with the event ids to mark billed.

        Each group (subscription, metric, the plan-version run of the period the event falls in) is
        priced incrementally on the charge that applied then: rate(all usage of that window) −
        rate(usage before these late events), so tiers continue where the invoice left off. For
        count and sum "before" is exact (all − late); for max, latest and unique_count it is the
        on-time usage (a simplification documented in docs/decisions)."""
        from catalog.models import Aggregation

        events = usage_source.late_events(subscription_ids=list(plans))
        if not events:
            return {}
        out: dict[int, list] = defaultdict(list)
        groups: dict[tuple, list] = defaultdict(list)
        segment_cache: dict[tuple, list] = {}
        for event in events:
            sub = plans[event.subscription_id].sub
            interval = sub.plan_version.plan.interval
            day = local_date(event.timestamp, sub.customer.timezone)
            first = billing_start(start_date=sub.start_date, trial_end_date=sub.trial_end_date)
            if day < first:
                # Trial (or pre-start) usage is never billed, late or not: settle it at zero.
                groups[(sub.pk, event.metric_id, sub.start_date, first, None)].append(event)
                continue
            period = period_containing(start_date=sub.start_date, interval=interval, billing_time=sub.billing_time,
                                       on=day)
            # The window starts where billing started, as the period's own invoice did.
            window_start = max(period.start, first)
            key = (sub.pk, period)
            if key not in segment_cache:
                slow = _needs_segments(sub, changes.get(sub.pk, ()), since=window_start)
                segs = (_segments(sub, window_start, period.end) if slow
                        else [(window_start, period.end, sub.plan_version, sub.quantity)])
                segment_cache[key] = _merge_by_version(segs) or [(window_start, period.end, sub.plan_version)]
            seg = next((s for s in segment_cache[key] if s[0] <= day < s[1]), segment_cache[key][-1])
            groups[(sub.pk, event.metric_id, seg[0], seg[1], seg[2].pk)].append(event)
        for (sub_id, metric_id, start, end, version_id), group in groups.items():
            sub = plans[sub_id].sub
            currency = sub.plan_version.plan.currency
            event_ids = [e.event_id for e in group]
            if version_id is None:
                out[sub_id].append((dict(description="Late usage during the trial, not billed",
                                         billable_metric_id=metric_id, quantity=Decimal(len(group)), amount=ZERO,
                                         period_start=start, period_end=end,
                                         metadata={"events": len(group), "trial": True}), event_ids))
                continue
            charge = next((c for c in charges.get(version_id) if c.billable_metric_id == metric_id), None)
            if charge is None:
                # The plan in force did not charge this metric: nothing to bill, but the events are
                # settled on this invoice so they are not examined forever.
                out[sub_id].append((dict(description="Late usage not charged on the plan in force",
                                         billable_metric_id=metric_id, quantity=Decimal(len(group)), amount=ZERO,
                                         period_start=start, period_end=end, metadata={"events": len(group)}),
                                    event_ids))
                continue
            try:
                b0, b1 = local_date_bounds_utc(start, end, sub.customer.timezone)
                everything = usage_source.aggregate_windows([("all", sub_id, b0, b1)], metric_ids=[metric_id],
                                                            late=None)["all"].get(metric_id)
                q_all = everything.quantity if everything else ZERO
                n_all = everything.event_count if everything else 0
                aggregation = charge.billable_metric.aggregation
                if aggregation in (Aggregation.COUNT, Aggregation.SUM):
                    late_q = (Decimal(len(group)) if aggregation == Aggregation.COUNT
                              else sum((e.value or ZERO for e in group), ZERO))
                    q_before = q_all - late_q
                else:
                    before = usage_source.aggregate_windows([("on_time", sub_id, b0, b1)], metric_ids=[metric_id],
                                                            late=False)["on_time"].get(metric_id)
                    q_before = before.quantity if before else ZERO
                n_before = max(n_all - len(group), 0)
                values_all = values_before = None
                if needs_event_values(model=charge.model, properties=charge.properties):
                    values_all = usage_source.event_values(subscription_id=sub_id, metric_id=metric_id, start=b0,
                                                           end=b1, late=None)
                    values_before = usage_source.event_values(subscription_id=sub_id, metric_id=metric_id, start=b0,
                                                              end=b1, late=False)
                rated_all = rate_charge(charge=charge, quantity=q_all, currency=currency, event_count=n_all,
                                        event_values=values_all)
                rated_before = rate_charge(charge=charge, quantity=q_before, currency=currency, event_count=n_before,
                                           event_values=values_before)
            except Exception as exc:  # noqa: BLE001 — the events stay unbilled; the next invoice retries them
                logger.exception("late usage of subscription %s, metric %s failed", sub.pk, metric_id)
                if errors is not None:
                    errors.append({"subscription": sub.external_id, "late_usage_metric": metric_id,
                                   "error": repr(exc)})
                continue
            name = charge.invoice_display_name or charge.billable_metric.name
            out[sub_id].append((dict(
                description=f"Late usage — {name}, {start.isoformat()} to {(end - timedelta(days=1)).isoformat()}"[:500],
                billable_metric_id=metric_id, charge=charge, plan_version_id=version_id,
                quantity=q_all - q_before, unit_amount=rated_all.unit_amount,
                amount=rated_all.amount - rated_before.amount, period_start=start, period_end=end,
                tiers=_tier_difference(rated_all.tiers, rated_before.tiers),
                metadata={"events": len(group), "quantity_before": str(q_before), "quantity_after": str(q_all),
                          "amount_before": str(rated_before.amount), "amount_after": str(rated_all.amount)},
            ), event_ids))
        return out

    def _base_fee_line(self, add, span: Span, version: PlanVersion, quantity: int, start: date, end: date,
                       currency: str, interval: str, *, advance: bool) -> None:
        full = full_days(span, interval=interval)
        days = (end - start).days
        amount = prorate(amount=version.amount * quantity, days_used=days, days_in_period=full, currency=currency)
        name = version.plan.name
        text = f"{name}" + (f" × {quantity} seats" if quantity != 1 else "")
        if days != full:
            text += f" (prorated {days}/{full} days)"
        add(kind=LineKind.SUBSCRIPTION, description=text, plan_version=version, quantity=Decimal(quantity),
            unit_amount=version.amount, amount=amount, period_start=start, period_end=end,
            metadata={"in_advance": advance, "days": days, "full_period_days": full})

    # -- inserting -----------------------------------------------------------------------------

    def insert(self) -> None:
        if self.invoices:
            bulk_create_with_history(self.invoices, Invoice, batch_size=1000)
        if self.lines:
            for line in self.lines:
                line.invoice_id = line.invoice.pk
            InvoiceLine.objects.bulk_create(self.lines, batch_size=2000)  # immutable rows: no history table
            self.lines_created = len(self.lines)
        if self.cursor_updates:
            _advance_cursors(self.cursor_updates)
        if self.proration_items:
            now = timezone.now()
            items = []
            for item, line in self.proration_items:
                item.invoiced_at = now
                item.invoice_line_id = line.pk
                item.updated_at = now
                items.append(item)
            bulk_update_with_history(items, ProrationItem, ["invoiced_at", "invoice_line_id", "updated_at"])
        if self.late_marks:
            usage_source.mark_late_billed(self.late_marks)
        if self.audits:
            audit_bulk_create(self.audits)


# --- helpers -------------------------------------------------------------------------------------

_CURSOR_SQL = """
UPDATE subscriptions_subscription AS s
SET usage_billed_through = c.usage_through, advance_billed_through = c.advance_through, updated_at = now()
FROM unnest(%s::bigint[], %s::date[], %s::date[]) AS c(id, usage_through, advance_through)
WHERE s.id = c.id
"""


def _advance_cursors(subs: list[Subscription]) -> None:
    """Move the billing cursors of the (locked) subscriptions in one statement. No history row per
    cursor move: the invoice rows (with history) and their `invoice.generated` audit events record
    which ranges were billed, and a subscription history row per billing run would double the
    writes of a 10,000-subscription run."""
    with connection.cursor() as cursor:
        cursor.execute(_CURSOR_SQL, [[s.pk for s in subs], [s.usage_billed_through for s in subs],
                                     [s.advance_billed_through for s in subs]])

def _audit(action, invoice, *, actor, rule, inputs) -> AuditEvent:
    return AuditEvent(action=action, object_type=Invoice._meta.label_lower, object_id=str(invoice.pk), actor=actor,
                      rule=rule, inputs=inputs)


def _charge_description(charge: Charge, rated) -> str:
    name = charge.invoice_display_name or charge.billable_metric.name
    return f"{name}: {rated.description}"[:500]


class _Charges:
    """Charges by plan version, loaded once per run per version (with their metric)."""

    def __init__(self):
        self._by_version: dict[int, list[Charge]] = {}

    def load(self, version_ids) -> None:
        missing = [v for v in version_ids if v not in self._by_version]
        if not missing:
            return
        for v in missing:
            self._by_version[v] = []
        for charge in Charge.objects.filter(plan_version_id__in=missing).select_related("billable_metric").order_by(
                "plan_version_id", "position", "pk"):
            self._by_version[charge.plan_version_id].append(charge)

    def get(self, version_id) -> list[Charge]:
        if version_id not in self._by_version:
            self.load([version_id])
        return self._by_version[version_id]


def _charges_by_version() -> _Charges:
    return _Charges()


def _changes_by_subscription(ids) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = defaultdict(list)
    for sub_id, effective, applied in SubscriptionChange.objects.filter(
        subscription_id__in=ids, kind__in=[ChangeKind.PLAN, ChangeKind.QUANTITY], superseded_at__isnull=True,
    ).values_list("subscription_id", "effective_date", "applied_at"):
        out[sub_id].append((effective, applied))
    return out


def _needs_segments(sub: Subscription, changes, since: date | None = None) -> bool:
    """Fast path: no plan/seat change after the oldest unbilled day and none pending, so the
    current plan version and seats applied throughout."""
    if not changes:
        return False
    oldest = since or min(d for d in (sub.usage_billed_through, sub.advance_billed_through, sub.start_date) if d)
    return any(applied is None or effective > oldest for effective, applied in changes)


def _segments(sub: Subscription, start: date, end: date) -> list[tuple]:
    from subscriptions.selectors import plan_segments

    return plan_segments(subscription=sub, start=start, end=end)


def _merge_by_version(segments) -> list[tuple[date, date, PlanVersion]]:
    """Usage is rated per plan version: a seat change alone does not restart the tiers."""
    merged: list[list] = []
    for start, end, version, _ in segments:
        if merged and merged[-1][2].pk == version.pk and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end, version])
    return [tuple(m) for m in merged]


def _tier_difference(after, before) -> list[dict]:
    """Tier rows of rate(after) − rate(before): what the late units added, tier by tier."""
    rows = []
    previous = {(t.from_unit, t.to_unit, t.unit_amount): t for t in before}
    for tier in after:
        old = previous.get((tier.from_unit, tier.to_unit, tier.unit_amount))
        units = tier.units - (old.units if old else ZERO)
        amount = tier.amount - (old.amount if old else ZERO)
        if units or amount:
            row = tier.as_dict()
            row["units"] = format_quantity(units)
            row["amount"] = format_quantity(amount)
            if old is not None:
                row["flat_amount"] = format_quantity(tier.flat_amount - old.flat_amount)
            rows.append(row)
    return rows


def _pending_prorations(ids) -> dict[int, list[ProrationItem]]:
    out: dict[int, list[ProrationItem]] = defaultdict(list)
    for item in ProrationItem.objects.filter(subscription_id__in=ids, invoiced_at__isnull=True).order_by(
            "subscription_id", "period_start", "pk"):
        out[item.subscription_id].append(item)
    return out


def _previous_invoices(ids) -> dict[int, tuple[Decimal, bool, object, int]]:
    """The latest non-void cycle invoice of each subscription: (total, had usage, id, days spanned). One query.
    Mid-period invoices (plan changes) are not a fair yardstick for a period's total."""
    had_usage = InvoiceLine.objects.filter(invoice=OuterRef("pk"), kind__in=USAGE_KINDS, quantity__gt=0)
    rows = (
        Invoice.objects.filter(subscription_id__in=ids, reason=InvoiceReason.SUBSCRIPTION_CYCLE)
        .exclude(status=InvoiceStatus.VOID)
        .annotate(had_usage=Exists(had_usage))
        .order_by("subscription_id", "-billing_date", "-created_at")
        .distinct("subscription_id")
        .values_list("subscription_id", "total", "had_usage", "pk", "period_start", "period_end")
    )
    return {sub_id: (total, had, pk, (end - start).days if start and end else 0)
            for sub_id, total, had, pk, start, end in rows}
