"""Invoice lifecycle: draft → finalized → paid | void | uncollectible (DESIGN.md §6).

Every transition follows the house pattern: one short transaction, the invoice re-read with
SELECT … FOR UPDATE, the source state checked (else 409), `save(update_fields=…)`, an audit row
with the rule and its inputs, side effects after commit. The billing run lives in
`invoicing.billing`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from common.audit import actor_label, actor_user, audit_bulk_create, audit_record
from common.errors import ApplicationError, ConflictError
from common.locks import row_lock
from common.models import AuditEvent
from common.money import money_quantum, quantize_money
from common.timeutil import local_date
from customers.services import (credit_balance_apply, credit_balance_credit_from_invoice, invoice_credits_return,
                                prepaid_credit_consume)
from invoicing.coupons import coupon_redemptions_consume
from invoicing.models import Invoice, InvoiceLine, InvoiceNumberSeries, InvoiceReason, InvoiceStatus
from invoicing.totals import (InvoiceTotals, TaxCache, customers_with_coupons, customers_with_credit, invoice_totals,
                              line_discountable, totals_inputs)

FINALIZE_BATCH = 500
RULE_AUTO_FINALIZE = "auto_finalize_after_grace_period"


# --- numbering ---------------------------------------------------------------------------------

def invoice_number_take(*, series: str, year: int, count: int = 1) -> list[str]:
    """Take `count` consecutive numbers from the (series, year) counter row. Must run inside the
    transaction that finalizes the invoices: the row stays locked until commit, and a rollback
    gives the numbers back, so numbers are gapless."""
    if count < 1:
        return []
    # INSERT … ON CONFLICT DO NOTHING: the first finalize of a year creates the row, race-free.
    InvoiceNumberSeries.objects.bulk_create([InvoiceNumberSeries(series=series, year=year)], ignore_conflicts=True)
    row = InvoiceNumberSeries.objects.select_for_update().get(series=series, year=year)
    first = row.last_value + 1
    row.last_value += count
    row.save(update_fields=["last_value"])
    return [f"{series}-{year}-{value:06d}" for value in range(first, first + count)]


# --- finalize ----------------------------------------------------------------------------------

def customer_snapshot(customer) -> dict:
    """The billing details copied onto the invoice at finalize; the PDF renders from this."""
    return {
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.invoice_email,
        "address": customer.address,
        "country": customer.country,
        "region": customer.region,
        "tax_id": customer.tax_id,
        "tax_exempt": customer.tax_exempt,
        "timezone": customer.timezone,
        "currency": customer.currency,
        "collection_method": customer.collection_method,
        "net_terms_days": customer.net_terms_days,
        "seller": dict(settings.SELLER),
    }


def issue_date_on_finalize(invoice: Invoice, *, today: date | None = None) -> date:
    """The issue date is the day the invoice is finalized (DESIGN.md §6): `today` for a billing run
    or sweep (its `as_of` is its "now"), else the customer's local date now. Never before the
    billing date (a draft billed ahead of the clock is issued on its billing date)."""
    if today is None:
        today = local_date(timezone.now(), invoice.customer.timezone)
    return max(today, invoice.billing_date)


def invoice_uses_coupon_period(invoice: Invoice) -> bool:
    """Only a cycle invoice (one per billing period) uses a period of a repeating coupon; an extra
    invoice inside a period (an upgrade's, a cancellation's, late usage, manual) does not."""
    return invoice.reason == InvoiceReason.SUBSCRIPTION_CYCLE


def _apply_finalize(invoice: Invoice, *, number: str, now, totals: InvoiceTotals) -> list[str]:
    """Mutate a locked draft into a finalized invoice with its frozen totals; returns the changed field names.
    `invoice.issue_date` is already the finalization day (issue_date_on_finalize)."""
    customer = invoice.customer
    invoice.number = number
    invoice.customer_snapshot = customer_snapshot(customer)
    invoice.due_date = invoice.issue_date + timedelta(days=customer.net_terms_days)
    for name, value in totals.as_fields().items():
        setattr(invoice, name, value)
    invoice.finalized_at = now
    invoice.status = InvoiceStatus.FINALIZED
    fields = ["number", "customer_snapshot", "issue_date", "due_date", *totals.as_fields(), "finalized_at", "status",
              "updated_at"]
    if invoice.amount_due == 0:
        # Nothing to collect (zero or credit invoice): it is settled on finalize, as Stripe does.
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = now
        fields.append("paid_at")
    return fields


def _totals_lines(rows) -> list[tuple]:
    """(amount, taxable, kind) rows → the (amount, taxable, discountable) lines of invoice_totals."""
    return [(amount, taxable, line_discountable(kind, amount)) for amount, taxable, kind in rows]


def _finalize_money(invoice: Invoice, *, now, lines, tax_cache: TaxCache | None = None, coupons: bool = True,
                    credit: bool = True) -> tuple[InvoiceTotals, dict]:
    """Recompute a locked draft's totals from the customer's coupons, tax rates and credits as they
    are now (coupon redemptions and the customer row locked, in that order), and consume them for
    this invoice in the same transaction: coupon periods, credit balance, prepaid credit, each
    idempotent per invoice id; a net-credit invoice credits the balance. `coupons` / `credit`
    False skip the reads for a customer known to have none (the batch path).
    Lock order on every finalize path: invoice → coupon redemptions → customer → number series."""
    customer, currency = invoice.customer, invoice.currency
    inputs = totals_inputs(customer=customer, subscription=invoice.subscription, currency=currency,
                           issue_date=invoice.issue_date, lock=True, credit_on=now, tax_cache=tax_cache,
                           coupons=coupons, credit=credit)
    totals = invoice_totals(currency=currency, lines=lines, coupons=inputs.coupons, tax=inputs.tax,
                            credit_balance=inputs.credit_balance, prepaid_available=inputs.prepaid_available,
                            amount_paid=invoice.amount_paid)
    if inputs.redemptions:
        coupon_redemptions_consume(redemptions=inputs.redemptions, invoice_id=invoice.pk, discounts=totals.discounts,
                                   uses_period=invoice_uses_coupon_period(invoice))
    if totals.credit_balance_applied > 0:
        applied = credit_balance_apply(customer=customer, currency=currency, amount=totals.credit_balance_applied,
                                       invoice_id=invoice.pk)
        if applied != totals.credit_balance_applied:
            raise ConflictError("The customer's credit balance changed during finalization; retry.",
                                code="credit_changed")
    if totals.prepaid_applied > 0:
        spent = prepaid_credit_consume(customer=customer, currency=currency, amount=totals.prepaid_applied,
                                       invoice_id=invoice.pk, on=now)
        if spent != totals.prepaid_applied:
            raise ConflictError("The customer's prepaid credit changed during finalization; retry.",
                                code="credit_changed")
    if totals.balance_credit > 0:
        credit_balance_credit_from_invoice(customer=customer, currency=currency, amount=totals.balance_credit,
                                           invoice_id=invoice.pk)
    described = inputs.describe()
    described.update({"subtotal": str(totals.subtotal), "discount": str(totals.discount), "tax": str(totals.tax),
                      "tax_note": totals.tax_note, "credit_balance_applied": str(totals.credit_balance_applied),
                      "prepaid_applied": str(totals.prepaid_applied), "balance_credit": str(totals.balance_credit)})
    return totals, described


def _finalize_audit(invoice: Invoice, *, actor: str, rule: str, inputs: dict) -> AuditEvent:
    return AuditEvent(
        action="invoice.finalized", object_type=Invoice._meta.label_lower, object_id=str(invoice.pk), actor=actor,
        rule=rule, inputs={**inputs, "number": invoice.number, "total": str(invoice.total),
                           "amount_due": str(invoice.amount_due), "status": invoice.status},
    )


def _after_finalize(invoice_ids: list) -> None:
    """Side effects after commit: render and store each invoice's PDF, then e-mail it (Celery,
    `invoicing.tasks`). A batch is one message that fans out per invoice. The invoices are already
    committed, so an enqueue failure (broker down, or an eager task failing) is logged, never raised
    into the finalizing caller; the documents can be re-rendered and re-sent from the admin/API."""
    from invoicing.tasks import invoice_documents_fan_out, invoice_pdf_render  # noqa: PLC0415 — cycle: invoicing.tasks imports this module

    ids = [str(pk) for pk in invoice_ids]
    try:
        if len(ids) == 1:
            invoice_pdf_render.delay(ids[0])
        elif ids:
            invoice_documents_fan_out.delay(ids)
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).exception("could not enqueue the documents of %d finalized invoice(s)", len(ids))


def invoice_finalize(*, invoice: Invoice, actor=None, rule: str = "manual", inputs: dict | None = None,
                     today: date | None = None) -> Invoice:
    """Assign the next gapless number of the invoice's series and year, freeze the customer
    snapshot and the totals, set the issue date (the day it is finalized: `today`, default the
    customer's local date) and the due date (issue date + net terms)."""
    with transaction.atomic():
        invoice = row_lock(Invoice, invoice.pk, related=("customer", "subscription__plan_version"))
        if invoice.status != InvoiceStatus.DRAFT:
            raise ConflictError(f"Only a draft can be finalized; this invoice is {invoice.status}.", code="invalid_state")
        if invoice.needs_review:
            raise ConflictError("This draft is waiting for review: approve it first (it is finalized on approval).",
                                code="needs_review", fields={"needs_review": ["approve the draft first"]})
        now = timezone.now()
        invoice.issue_date = issue_date_on_finalize(invoice, today=today)
        totals, money_inputs = _finalize_money(invoice, now=now,
                                               lines=_totals_lines(invoice.lines.values_list("amount", "taxable",
                                                                                              "kind")))
        (number,) = invoice_number_take(series=invoice.series, year=invoice.issue_date.year)
        fields = _apply_finalize(invoice, number=number, now=now, totals=totals)
        invoice.save(update_fields=fields)
        audit_bulk_create([_finalize_audit(invoice, actor=actor_label(actor), rule=rule, inputs={**(inputs or {}), **money_inputs})])
        ids = [invoice.pk]
        transaction.on_commit(lambda: _after_finalize(ids))
    return invoice


@dataclass
class FinalizeSweepResult:
    finalized: int = 0
    waiting_review: int = 0
    waiting_grace: int = 0


def invoices_auto_finalize(*, today: date, invoice_ids=None, batch_size: int = FINALIZE_BATCH) -> FinalizeSweepResult:
    """Finalize drafts whose customer's grace period (`invoice_grace_period_days`, default 0) has
    passed by `today`; drafts flagged for review wait until approved. Batches lock their drafts in
    pk order and take a block of consecutive numbers from the locked counter row, so the sweep is
    set-based, safe to run twice at once, and gapless."""
    result = FinalizeSweepResult()
    drafts = Invoice.objects.filter(status=InvoiceStatus.DRAFT, billing_date__lte=today)
    if invoice_ids is not None:
        drafts = drafts.filter(pk__in=list(invoice_ids))
    due: list = []
    for pk, billing_date, grace, needs_review in drafts.values_list(
        "pk", "billing_date", "customer__invoice_grace_period_days", "needs_review"
    ).order_by("pk"):
        if billing_date + timedelta(days=grace) > today:
            result.waiting_grace += 1
        elif needs_review:
            result.waiting_review += 1
        else:
            due.append(pk)
    for start in range(0, len(due), batch_size):
        result.finalized += _finalize_batch(due[start:start + batch_size], today=today)
    return result


def _finalize_batch(ids: list, *, today: date) -> int:
    with transaction.atomic():
        invoices = list(
            Invoice.objects.select_for_update(of=("self",)).select_related("customer", "subscription__plan_version")
            .filter(pk__in=ids, status=InvoiceStatus.DRAFT, needs_review=False).order_by("pk")
        )
        if not invoices:
            return 0
        lines: dict = {}
        for invoice_id, amount, taxable, kind in (InvoiceLine.objects.filter(invoice__in=invoices)
                                                  .values_list("invoice_id", "amount", "taxable", "kind")):
            lines.setdefault(invoice_id, []).append((amount, taxable, line_discountable(kind, amount)))
        # Money first, customer by customer (pk order, the lock order of every finalize path), each
        # customer's invoices in billing-date order so a `once` coupon goes to the earliest. Customers
        # without coupons or credit cost no query beyond the two set lookups; tax rates are read once
        # per distinct (country, region, exemption, B2B, date).
        customer_ids = {i.customer_id for i in invoices}
        with_coupons = customers_with_coupons(customer_ids)
        with_credit = customers_with_credit(customer_ids)
        tax_cache = TaxCache()
        now = timezone.now()
        for invoice in invoices:  # issued the day the sweep (or the run, on its as_of) finalizes them
            invoice.issue_date = issue_date_on_finalize(invoice, today=today)
        money: dict = {}
        for invoice in sorted(invoices, key=lambda i: (i.customer_id, i.billing_date, i.created_at, str(i.pk))):
            money[invoice.pk] = _finalize_money(invoice, now=now, lines=lines.get(invoice.pk, []), tax_cache=tax_cache,
                                                coupons=invoice.customer_id in with_coupons,
                                                credit=invoice.customer_id in with_credit)
        # Numbers follow the issue dates (then customer, then creation) within a batch, so a catch-up run
        # over several months numbers April's invoices before May's.
        invoices.sort(key=lambda i: (i.issue_date, i.billing_date, i.customer.external_id, i.created_at, str(i.pk)))
        numbers: dict = {}
        by_series: dict = {}
        for invoice in invoices:
            by_series.setdefault((invoice.series, invoice.issue_date.year), []).append(invoice)
        for (series, year), group in sorted(by_series.items()):
            for invoice, number in zip(group, invoice_number_take(series=series, year=year, count=len(group))):
                numbers[invoice.pk] = number
        audits = []

        for invoice in invoices:
            totals, money_inputs = money[invoice.pk]
            _apply_finalize(invoice, number=numbers[invoice.pk], now=now, totals=totals)
            grace = invoice.customer.invoice_grace_period_days
            audits.append(_finalize_audit(invoice, actor="system", rule=RULE_AUTO_FINALIZE, inputs={
                "billing_date": invoice.billing_date.isoformat(), "grace_period_days": grace, "today": today.isoformat(),
                **money_inputs}))
        _save_finalized(invoices)
        audit_bulk_create(audits)
        ids_done = [i.pk for i in invoices]
        transaction.on_commit(lambda: _after_finalize(ids_done))
        return len(invoices)


_FINALIZE_SQL = """
UPDATE invoicing_invoice AS i
SET number = f.number, customer_snapshot = f.snapshot::jsonb, issue_date = f.issue_date, due_date = f.due_date,
    subtotal = f.subtotal,
    discount = f.discount, tax = f.tax, total = f.total, amount_paid = f.amount_paid, amount_due = f.amount_due,
    discount_lines = f.discount_lines::jsonb, tax_lines = f.tax_lines::jsonb, tax_note = f.tax_note,
    credit_balance_applied = f.credit_balance_applied, prepaid_applied = f.prepaid_applied,
    status = f.status, finalized_at = f.finalized_at, paid_at = f.paid_at, updated_at = f.finalized_at
FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::date[], %s::date[], %s::numeric[], %s::numeric[], %s::numeric[],
            %s::numeric[], %s::numeric[], %s::numeric[], %s::text[], %s::text[], %s::text[], %s::numeric[],
            %s::numeric[], %s::text[], %s::timestamptz[], %s::timestamptz[])
     AS f(id, number, snapshot, issue_date, due_date, subtotal, discount, tax, total, amount_paid, amount_due, discount_lines,
          tax_lines, tax_note, credit_balance_applied, prepaid_applied, status, finalized_at, paid_at)
WHERE i.id = f.id AND i.status = 'draft'
"""


def _save_finalized(invoices: list[Invoice]) -> None:
    """One UPDATE for a batch of locked drafts, plus their history rows in one INSERT."""
    def as_json(values):
        return [json.dumps(v, cls=DjangoJSONEncoder) for v in values]

    cols = ([i.pk for i in invoices], [i.number for i in invoices],
            as_json(i.customer_snapshot for i in invoices), [i.issue_date for i in invoices],
            [i.due_date for i in invoices],
            *([getattr(i, name) for i in invoices] for name in ("subtotal", "discount", "tax", "total", "amount_paid",
                                                                "amount_due")),
            as_json(i.discount_lines for i in invoices), as_json(i.tax_lines for i in invoices),
            [i.tax_note for i in invoices], [i.credit_balance_applied for i in invoices],
            [i.prepaid_applied for i in invoices],
            [i.status for i in invoices], [i.finalized_at for i in invoices], [i.paid_at for i in invoices])
    with connection.cursor() as cursor:
        cursor.execute(_FINALIZE_SQL, list(cols))
        if cursor.rowcount != len(invoices):
            raise RuntimeError("a locked draft changed under the finalize batch")
    for invoice in invoices:
        invoice.updated_at = invoice.finalized_at
    Invoice.history.bulk_history_create(invoices, update=True, batch_size=1000)


# --- review queue ------------------------------------------------------------------------------

def invoice_approve(*, invoice: Invoice, actor=None, finalize: bool = True) -> Invoice:
    """A finance user clears a flagged draft; by default it is finalized in the same transaction."""
    with transaction.atomic():
        invoice = row_lock(Invoice, invoice.pk)
        if invoice.status != InvoiceStatus.DRAFT or not invoice.needs_review:
            raise ConflictError("Only a draft waiting for review can be approved.", code="invalid_state")
        invoice.needs_review = False
        invoice.approved_by = actor_label(actor)
        invoice.approved_at = timezone.now()
        invoice.save(update_fields=["needs_review", "approved_by", "approved_at", "updated_at"])
        audit_record(action="invoice.approved", obj=invoice, actor=actor_label(actor), actor_user=actor_user(actor),
                     rule="review_queue", inputs={"review_reasons": invoice.review_reasons})
        if finalize:
            invoice = invoice_finalize(invoice=invoice, actor=actor, rule="approved", inputs={})
    return invoice


# --- void / uncollectible / payments -----------------------------------------------------------

def invoice_void(*, invoice: Invoice, actor=None, reason: str = "") -> Invoice:
    """Void a draft or an open invoice. Paid (even partly) invoices are corrected with credit notes.
    The credit balance and prepaid credit it used go back to the customer; coupon periods stay used.
    The billing cursors stay where they are: voided charges are not re-billed automatically."""
    with transaction.atomic():
        invoice = row_lock(Invoice, invoice.pk)
        if invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED, InvoiceStatus.UNCOLLECTIBLE):
            raise ConflictError(f"A {invoice.status} invoice cannot be voided.", code="invalid_state")
        if invoice.amount_paid > 0:
            raise ConflictError("An invoice with payments cannot be voided; issue a credit note.", code="invalid_state")
        old = invoice.status
        invoice.status = InvoiceStatus.VOID
        invoice.voided_at = timezone.now()
        invoice.amount_due = Decimal(0)
        invoice.save(update_fields=["status", "voided_at", "amount_due", "updated_at"])
        returned = {}
        if old != InvoiceStatus.DRAFT:  # only finalizing consumes credits; a draft merely previewed them
            returned = invoice_credits_return(customer=invoice.customer, currency=invoice.currency,
                                              invoice_id=invoice.pk, actor=actor)
        audit_record(action="invoice.voided", obj=invoice, actor=actor_label(actor), actor_user=actor_user(actor),
                     rule="manual", inputs={"from": old, "reason": reason, "total": str(invoice.total),
                                            "credits_returned": {k: str(v) for k, v in returned.items()}})
    return invoice


def invoice_mark_uncollectible(*, invoice: Invoice, actor=None, reason: str = "") -> Invoice:
    with transaction.atomic():
        invoice = row_lock(Invoice, invoice.pk)
        if invoice.status != InvoiceStatus.FINALIZED:
            raise ConflictError(f"Only a finalized invoice can be marked uncollectible; this one is {invoice.status}.",
                                code="invalid_state", fields={"invoice": [f"invoice is {invoice.status}"]})
        if invoice.amount_due <= 0:
            raise ConflictError("Only an invoice with an amount due can be marked uncollectible.", code="nothing_due",
                                fields={"invoice": ["nothing due"]})
        invoice.status = InvoiceStatus.UNCOLLECTIBLE
        invoice.marked_uncollectible_at = timezone.now()
        invoice.save(update_fields=["status", "marked_uncollectible_at", "updated_at"])
        audit_record(action="invoice.marked_uncollectible", obj=invoice, actor=actor_label(actor),
                     actor_user=actor_user(actor), rule="manual",
                     inputs={"reason": reason, "amount_due": str(invoice.amount_due)})
    return invoice


def invoice_mark_paid(*, invoice: Invoice, amount: Decimal | None = None, paid_on: date | None = None,
                      reference: str = "", actor=None, method: str = "bank_transfer") -> Invoice:
    """Record a (partial) payment received outside Stripe; the invoice is paid when the amount due
    reaches zero. `amount` defaults to the whole amount due; it may not exceed it.

    The payment record itself belongs to the payments app (DESIGN.md §1: invoicing never imports
    it): it subscribes to `invoice.payment_recorded` and writes its `Payment` row in this
    transaction from the event's inputs (amount, date, reference, method)."""
    with transaction.atomic():
        invoice = row_lock(Invoice, invoice.pk)
        return invoice_payment_apply(invoice=invoice, amount=amount, paid_on=paid_on, reference=reference,
                                     actor=actor, rule="manual_payment", inputs={"method": method})


def invoice_payment_check(*, invoice: Invoice, amount: Decimal | None) -> Decimal:
    """The amount a payment may apply to a locked invoice (default: all that is due), or the error naming the field."""
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.UNCOLLECTIBLE):
        raise ConflictError(f"Only a finalized invoice can be paid; this one is {invoice.status}.",
                            code="invalid_state", fields={"invoice": [f"invoice is {invoice.status}"]})
    amount = invoice.amount_due if amount is None else amount
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ApplicationError("The amount must be a positive decimal.", fields={"amount": ["must be positive"]})
    if amount != quantize_money(amount, invoice.currency):
        raise ApplicationError(f"{invoice.currency} amounts have at most {money_quantum(invoice.currency)} precision.",
                               fields={"amount": ["too many decimal places"]})
    if amount > invoice.amount_due:
        raise ApplicationError(f"The amount exceeds the amount due ({invoice.amount_due}).", code="overpayment",
                               fields={"amount": [f"exceeds the amount due ({invoice.amount_due})"]})
    return amount


def invoice_payment_apply(*, invoice: Invoice, amount: Decimal | None, paid_on: date | None = None,
                          reference: str = "", actor=None, rule: str, inputs: dict | None = None) -> Invoice:
    """Lower a **locked** invoice's amount due by a payment (the caller holds the row lock and
    writes its own payment record in the same transaction). Writes `invoice.payment_recorded`
    and, when nothing is due any more, `invoice.paid`."""
    amount = invoice_payment_check(invoice=invoice, amount=amount)
    paid_on = paid_on or timezone.localdate()
    old = invoice.status
    invoice.amount_paid += amount
    # amount_due already nets the frozen credits and any credit notes that reduced it.
    invoice.amount_due = quantize_money(max(invoice.amount_due - amount, Decimal(0)), invoice.currency)
    fields = ["amount_paid", "amount_due", "updated_at"]
    if invoice.amount_due == 0:
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = timezone.now()
        fields += ["status", "paid_at"]
    invoice.save(update_fields=fields)
    audit_record(action="invoice.payment_recorded", obj=invoice, actor=actor_label(actor),
                 actor_user=actor_user(actor), rule=rule,
                 inputs={**(inputs or {}), "amount": str(amount), "date": paid_on.isoformat(), "reference": reference,
                         "from": old, "to": invoice.status, "amount_due": str(invoice.amount_due)})
    if invoice.status == InvoiceStatus.PAID:
        audit_record(action="invoice.paid", obj=invoice, actor=actor_label(actor), actor_user=actor_user(actor),
                     rule=rule, inputs={"total": str(invoice.total), "amount_paid": str(invoice.amount_paid),
                                        "last_payment": str(amount), "customer": invoice.customer_id})
    return invoice


def invoice_payment_reverse(*, invoice: Invoice, amount: Decimal, actor=None, rule: str, reason: str = "",
                            flag: str = "", inputs: dict | None = None) -> Invoice:
    """Reopen `amount` of a **locked** invoice's payments (a dispute or a reversed payment): the
    amount is due again and a paid invoice is open again. `flag` adds a review reason (the invoice
    shows up as flagged for finance)."""
    amount = min(quantize_money(amount, invoice.currency), invoice.amount_paid)
    old = invoice.status
    fields = ["updated_at"]
    if amount > 0:
        invoice.amount_paid -= amount
        invoice.amount_due = quantize_money(invoice.amount_due + amount, invoice.currency)
        fields += ["amount_paid", "amount_due"]
        if invoice.status == InvoiceStatus.PAID:
            invoice.status = InvoiceStatus.FINALIZED
            invoice.paid_at = None
            fields += ["status", "paid_at"]
    if flag:
        invoice.needs_review = True
        invoice.review_reasons = [*invoice.review_reasons, {"code": flag, "message": reason}]
        fields += ["needs_review", "review_reasons"]
    invoice.save(update_fields=fields)
    audit_record(action="invoice.payment_reversed", obj=invoice, actor=actor_label(actor), actor_user=actor_user(actor),
                 rule=rule, inputs={**(inputs or {}), "amount": str(amount), "from": old, "to": invoice.status,
                                    "amount_due": str(invoice.amount_due), "reason": reason})
    return invoice
