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
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from catalog.models import Charge, PlanVersion
from catalog.rating import minimum_commitment_true_up, needs_event_values, rate_charge
from common.audit import actor_label, audit_bulk_create
from common.models import AuditEvent
from common.money import format_price, quantize_money
from common.timeutil import local_date, local_date_bounds_utc
from invoicing import review
from invoicing.late_usage import LateLine, LateMark, late_usage_lines, mark_late_billed
from invoicing.models import (
    BillingRun,
    Invoice,
    InvoiceLine,
    InvoiceReason,
    InvoiceStatus,
    LineKind,
)
from invoicing.proration import pending_prorations, unused_time_credit
from invoicing.schedule import BillingDate, Span, billing_schedule, closures_until, full_days
from invoicing.segments import (ChargesByVersion, Segment, VersionRun, changes_by_subscription, merge_by_version,
                                needs_segments, segments)
from invoicing.services import invoices_auto_finalize
from invoicing.totals import TotalsPreview, line_discountable
from subscriptions.fees import base_fee_amount
from subscriptions.locks import subscriptions_lock
from subscriptions.models import ProrationItem, ProrationKind, Subscription, SubscriptionChange
from subscriptions.periods import prorate
from subscriptions.services import subscription_apply_pending_changes
from usage.selectors import subscriptions_with_unbilled_late_usage, usage_aggregate_windows, usage_event_values

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
ZERO = Decimal(0)
RULE_CYCLE = "billing_run.period_close"
RULE_CHANGE = "subscription_change.invoice_now"
RULE_ZERO_USAGE = review.RULE_ZERO_USAGE
USAGE_KINDS = review.USAGE_KINDS


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


def billing_run(**kwargs) -> BillingRun:
    """The synchronous billing run; the sweep (runs, chunks, heartbeat, takeover, fan-out) lives in
    `invoicing.billing_run`, this module builds the lines of one chunk."""
    from invoicing.billing_run import billing_run as run_billing  # noqa: PLC0415 — cycle: invoicing.billing_run imports this module

    return run_billing(**kwargs)


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
    late = set(subscriptions_with_unbilled_late_usage(subscription_ids=subscription_ids))
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
        sub = subscriptions_lock([subscription.pk])[0]
        interval = sub.plan_version.plan.interval
        spans = closures_until(start_date=sub.start_date, trial_end_date=sub.trial_end_date, end_date=sub.end_date,
                               usage_billed_through=sub.usage_billed_through, interval=interval,
                               billing_time=sub.billing_time, on=on_date)
        bill = BillingDate(on_date, closures=spans)
        advance_through = None
        if sub.plan_version.pay_in_advance and sub.end_date is not None and sub.end_date <= on_date:
            # Ended before a billing run billed the period's in-advance fee: nothing is credited
            # (subscriptions) and the final invoice charges the days used (DESIGN.md §5).
            schedule = billing_schedule(
                start_date=sub.start_date, trial_end_date=sub.trial_end_date, end_date=sub.end_date,
                usage_billed_through=sub.usage_billed_through, advance_billed_through=sub.advance_billed_through,
                interval=interval, billing_time=sub.billing_time, pay_in_advance=True, as_of=on_date)
            advances = [b.advance for b in schedule.bills if b.advance is not None]
            if len(advances) == 1:  # several periods unbilled: the billing run bills them, one per period
                advance = advances[0]
                if ProrationItem.objects.filter(subscription=sub, period_end=advance.period.end).exists():
                    # A change inside the period settled it with proration items (credits of the
                    # unused time included): the fee covers the whole period, as that contract says.
                    advance = Span(advance.period, advance.start, advance.period.end)
                bill.advance = advance
                advance_through = advance.end
        builder = _ChunkBuilder(subs=[sub], as_of=on_date, reason=InvoiceReason.SUBSCRIPTION_CHANGE, run=None,
                                rule=RULE_CHANGE, actor=actor_label(actor), extra_inputs={"reason": reason})
        plans = {sub.pk: _Plan(sub=sub, bills=[bill], usage_billed_through=spans[-1].end if spans else None,
                               advance_billed_through=advance_through)}
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


@dataclass
class _Plan:
    sub: Subscription
    bills: list[BillingDate]
    usage_billed_through: date | None
    advance_billed_through: date | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class _ClosureSegments:
    """A closed span and the plan segments it is billed on."""
    span: Span
    segments: list[Segment]


@dataclass(frozen=True, slots=True)
class _BillWork:
    """One billing date of a planned subscription, with its segments."""
    plan: _Plan
    bill: BillingDate
    closures: list[_ClosureSegments]
    advance_segment: Segment | None


@dataclass(frozen=True, slots=True)
class _UsageWindow:
    """A subscription's usage window: one run of one plan version inside a closed span."""
    sub: Subscription
    run: VersionRun


@dataclass(frozen=True, slots=True)
class _ProrationUse:
    """A proration item and the (unsaved) line that bills it."""
    item: ProrationItem
    line: InvoiceLine


def _finished(sub: Subscription) -> bool:
    return sub.end_date is not None and (sub.usage_billed_through or sub.start_date) >= sub.end_date


def _bill_chunk(ids: list[int], *, as_of: date, now, run: BillingRun, result: RunResult) -> None:
    with transaction.atomic():
        subs = subscriptions_lock(ids)
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
            for pk in subscriptions_with_unbilled_late_usage(subscription_ids=idle_finished):
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
        self.proration_items: list[_ProrationUse] = []
        self.late_marks: list[LateMark] = []
        self.cursor_updates: list[Subscription] = []
        self.lines_created = 0
        self.flagged = 0

    # -- building ------------------------------------------------------------------------------

    def build(self, plans: dict[int, _Plan], *, errors: list | None = None) -> list[Invoice]:
        ids = list(plans)
        changes = changes_by_subscription(ids)
        charges = ChargesByVersion()
        # Segments: which plan version/seats applied when, per closure and advance.
        work: list[_BillWork] = []
        for plan in plans.values():
            sub = plan.sub
            split = needs_segments(sub, changes.get(sub.pk, ()))
            for bill in plan.bills:
                closures = [_ClosureSegments(span, segments(sub, span.start, span.end, split=split))
                            for span in bill.closures]
                advance_segment = None
                if bill.advance is not None:
                    segs = segments(sub, bill.advance.start, bill.advance.end, split=split)
                    advance_segment = segs[0] if segs else None
                work.append(_BillWork(plan, bill, closures, advance_segment))

        # Usage windows: one per (closure, run of one plan version); rated on that version.
        windows: dict[tuple, _UsageWindow] = {}
        for item in work:
            sub = item.plan.sub
            for closure in item.closures:
                for run in merge_by_version(closure.segments):
                    windows[(sub.pk, run.start, run.end)] = _UsageWindow(sub, run)
        versions = {w.run.version.pk for w in windows.values()}
        charges.load(versions)
        metric_ids = {c.billable_metric_id for v in versions for c in charges.get(v)}
        usage = usage_aggregate_windows(
            [(key, w.sub.pk, *local_date_bounds_utc(w.run.start, w.run.end, w.sub.customer.timezone))
             for key, w in windows.items()],
            metric_ids=metric_ids or None,
        ) if windows and metric_ids else {}

        prorations = pending_prorations(ids)
        late = late_usage_lines(plans, changes, charges, errors)
        previous = review.previous_invoices(ids)

        failed: set[int] = set()
        for item in work:
            sub, bill = item.plan.sub, item.bill
            if sub.pk in failed:
                continue
            try:
                self._invoice_for(sub, item, charges, usage, prorations, late, previous,
                                  reason=item.plan.reason or self.reason)
            except Exception as exc:  # noqa: BLE001 — one bad subscription does not stop the run
                if errors is None:
                    raise
                logger.exception("billing subscription %s on %s failed", sub.pk, bill.date)
                errors.append({"subscription": sub.external_id, "billing_date": bill.date.isoformat(), "error": repr(exc)})
                item.plan.usage_billed_through = item.plan.advance_billed_through = None
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
        self.proration_items = [p for p in self.proration_items if p.line.invoice_id not in dropped]
        self.late_marks = [m for m in self.late_marks if m.invoice.pk not in dropped]

    def _invoice_for(self, sub, work: _BillWork, charges: ChargesByVersion, usage, prorations,
                     late: dict[int, list[LateLine]], previous: dict[int, review.PreviousInvoice], *,
                     reason) -> Invoice | None:
        bill = work.bill
        currency = sub.plan_version.plan.currency
        interval = sub.plan_version.plan.interval
        invoice = Invoice(
            customer_id=sub.customer_id, subscription_id=sub.pk, currency=currency, billing_date=bill.date,
            # Issued when finalized (DESIGN.md §6); a run's as_of is its "now", so a draft shows that
            # day until a later finalization moves it.
            issue_date=max(bill.date, self.as_of),
            due_date=max(bill.date, self.as_of) + timedelta(days=sub.customer.net_terms_days),
            reason=reason, billing_run=self.run, status=InvoiceStatus.DRAFT,
        )
        lines: list[InvoiceLine] = []

        def add(**kwargs) -> InvoiceLine:
            line = InvoiceLine(invoice=invoice, position=len(lines), **kwargs)
            lines.append(line)
            return line

        # 1. In-advance base fee of the period that starts on this date.
        if bill.advance is not None and work.advance_segment is not None:
            version, quantity = work.advance_segment.version, work.advance_segment.quantity
            if version.amount and version.pay_in_advance:
                self._base_fee_line(add, bill.advance, version, quantity, bill.advance.start, bill.advance.end,
                                    currency, interval, advance=True)

        # 2. The closed period(s): arrears base fee, usage per charge, minimum commitment.
        has_usage_lines = False
        for closure in work.closures:
            span = closure.span
            base_nominal: dict[int, Decimal] = defaultdict(lambda: ZERO)
            for seg in closure.segments:
                amount_fee = base_fee_amount(version=seg.version, quantity=seg.quantity, start=seg.start, end=seg.end,
                                             full_days=full_days(span, interval=interval), currency=currency)
                base_nominal[seg.version.pk] += amount_fee
                if not seg.version.pay_in_advance and seg.version.amount:
                    self._base_fee_line(add, span, seg.version, seg.quantity, seg.start, seg.end, currency, interval,
                                        advance=False)
            for run in merge_by_version(closure.segments):
                start, end, version = run.start, run.end, run.version
                usage_total = ZERO
                for charge in charges.get(version.pk):
                    agg = usage.get((sub.pk, start, end), {}).get(charge.billable_metric_id)
                    quantity = agg.quantity if agg else ZERO
                    count = agg.event_count if agg else 0
                    values = None
                    if needs_event_values(model=charge.model, properties=charge.properties):
                        b0, b1 = local_date_bounds_utc(start, end, sub.customer.timezone)
                        values = usage_event_values(subscription_id=sub.pk, metric_id=charge.billable_metric_id,
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
            amount, metadata = quantize_money(item.amount, currency), {"proration_item": item.pk,
                                                                        "proration_kind": item.kind}
            if item.kind == ProrationKind.CREDIT:
                amount, charged = unused_time_credit(sub, item, currency=currency, interval=interval)
                metadata.update(charged)
            line = add(kind=LineKind.PRORATION, description=item.description, plan_version_id=item.plan_version_id,
                       quantity=Decimal(item.quantity), unit_amount=item.unit_amount,
                       amount=amount, period_start=item.period_start,
                       period_end=item.period_end, metadata=metadata)
            self.proration_items.append(_ProrationUse(item, line))
            prorations[sub.pk].remove(item)

        # 4. Late usage: events that arrived after their period was invoiced.
        for late_line in late.pop(sub.pk, []):
            add(kind=LineKind.LATE_USAGE, **late_line.fields)
            self.late_marks.append(LateMark(late_line.event_ids, invoice))

        if not lines:
            return None  # nothing billable (a free plan): the cursors still move

        # Draft preview of coupons, tax and credits (finalize recomputes and consumes them under locks).
        if getattr(self, "totals_preview", None) is None:
            self.totals_preview = TotalsPreview({s.customer_id for s in self.subs})
        totals = self.totals_preview.totals(invoice=invoice, customer=sub.customer, subscription=sub,
                                            lines=[(ln.amount, ln.taxable, line_discountable(ln.kind, ln.amount))
                                                   for ln in lines])
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
        if prev is not None and has_usage_lines and not has_usage and prev.had_usage:
            reasons.append({"rule": RULE_ZERO_USAGE, "usage_lines": len(usage_lines),
                            "previous_invoice": str(prev.invoice_id)})
        if reason == InvoiceReason.SUBSCRIPTION_CYCLE:
            previous[sub.pk] = review.PreviousInvoice(invoice.total, has_usage, invoice.pk, review.lines_span_days(lines))
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

    def _base_fee_line(self, add, span: Span, version: PlanVersion, quantity: int, start: date, end: date,
                       currency: str, interval: str, *, advance: bool) -> None:
        full = full_days(span, interval=interval)
        days = (end - start).days
        amount = base_fee_amount(version=version, quantity=quantity, start=start, end=end, full_days=full,
                                 currency=currency)
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
            for use in self.proration_items:
                use.item.invoiced_at = now
                use.item.invoice_line_id = use.line.pk
                use.item.updated_at = now
                items.append(use.item)
            bulk_update_with_history(items, ProrationItem, ["invoiced_at", "invoice_line_id", "updated_at"])
        if self.late_marks:
            mark_late_billed(self.late_marks)
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
