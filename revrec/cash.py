"""Cash in the journal (DESIGN.md §8): payments received, refunds paid out and payment reversals
(disputes), posted from the payments app's rows (payments.Payment, payments.Refund) and the
`invoice.payment_reversed` audit rows. Each posts exactly once: entries are unique per
(source_type, source_id, kind) and the sweep (`sweep_cash`, called by `revrec_sync`) re-checks under
the journal lock."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Q
from django.db.models.functions import Cast

from common.models import AuditEvent
from invoicing.models import Invoice
from payments.models import Payment, PaymentStatus, Refund, RefundStatus
from revrec.models import Account, JournalEntry
from revrec.postings import (Draft, closed_months, journal_lock, local_day, posted_keys, posting_date, unposted_documents,
                             write_entries)

ZERO = Decimal(0)


def _post_once(*, source_type: str, kind: str, source_id, on: date, currency, memo: str, invoice_id, customer_id,
               lines: list[tuple[str, Decimal, bool]]) -> bool:
    """One cash entry per (source_type, kind, source_id), checked under the journal lock: False when it is
    already posted. `lines` are (account, signed amount, unlinked) in entry order; zero amounts are skipped."""
    with transaction.atomic():
        journal_lock()
        if posted_keys(source_type, kind, [source_id]):
            return False
        post_on, text = posting_date(on, closed_months())
        draft = Draft(date=post_on, currency=currency, memo=memo, source_type=source_type, source_id=str(source_id),
                      kind=kind, document_date=on, invoice_id=invoice_id, customer_id=customer_id, note=text)
        for account, amount, unlinked in lines:
            draft.add(account, amount, unlinked=unlinked)
        write_entries([draft])
        return True


def post_payment(*, source_id: str, invoice_id=None, customer_id=None, amount: Decimal, currency: str, on: date,
                 memo: str = "", applied: Decimal | None = None) -> bool:
    """Dr cash (amount) / Cr AR (applied to the invoice) / Cr customer credit (the rest: cash
    received beyond what the invoice had due, e.g. a card charge that arrived after the invoice was
    paid; it is refunded or kept as credit). `source_id` identifies the payment (unique)."""
    applied = amount if applied is None else applied
    unapplied = amount - applied
    # The unapplied part belongs to no invoice (the reconciliation counts it as collected for no
    # invoice of the month).
    return _post_once(source_type="payment", kind="received", source_id=source_id, on=on, currency=currency,
                      memo=memo or f"Payment {source_id}", invoice_id=invoice_id, customer_id=customer_id,
                      lines=[(Account.CASH, applied, False), (Account.ACCOUNTS_RECEIVABLE, -applied, False),
                             (Account.CASH, unapplied, True), (Account.CUSTOMER_CREDIT, -unapplied, True)])


def post_refund(*, source_id: str, invoice_id=None, customer_id=None, amount: Decimal, currency: str, on: date,
                memo: str = "", from_credit: Decimal = ZERO) -> bool:
    """Money paid back outside a credit note (a refund that belongs to a refund credit note is
    already in that note's entry: it is never posted again): Dr customer credit for `from_credit`
    (what the payment had left unapplied: an overpayment refunded), Dr AR for the rest (money of a
    settled invoice returned without a credit note: the customer owes it again) / Cr cash."""
    rest = amount - from_credit
    return _post_once(source_type="refund", kind="paid_out", source_id=source_id, on=on, currency=currency,
                      memo=memo or f"Refund {source_id}", invoice_id=invoice_id, customer_id=customer_id,
                      lines=[(Account.CUSTOMER_CREDIT, from_credit, True), (Account.CASH, -from_credit, True),
                             (Account.ACCOUNTS_RECEIVABLE, rest, False), (Account.CASH, -rest, False)])


def post_payment_reversal(*, source_id: str, invoice_id, customer_id, amount: Decimal, currency: str, on: date,
                          memo: str = "") -> bool:
    """A dispute (or a reversed payment) reopens `amount` of an invoice: Dr AR / Cr cash."""
    return _post_once(source_type="payment", kind="reversed", source_id=source_id, on=on, currency=currency,
                      memo=memo or f"Payment reversed {source_id}", invoice_id=invoice_id, customer_id=customer_id,
                      lines=[(Account.ACCOUNTS_RECEIVABLE, amount, False), (Account.CASH, -amount, False)])


def _legacy_posted_payments() -> set[str]:
    """Payments already posted by the first version's sweep, keyed by their `invoice.payment_recorded`
    audit row: those events name their payment (`payment_id`), or (written by invoice_mark_paid
    before the payments app) match the Payment row written for them on (invoice, amount, date)."""
    by_payment = Payment.objects.annotate(pk_text=Cast("pk", CharField())).filter(pk_text=OuterRef("source_id"))
    event_ids = list(JournalEntry.objects.filter(source_type="payment", kind="received")
                     .exclude(Exists(by_payment)).values_list("source_id", flat=True))
    if not event_ids:
        return set()
    covered, legacy = set(), []
    for inputs, invoice_id in AuditEvent.objects.filter(action="invoice.payment_recorded", pk__in=event_ids) \
            .values_list("inputs", "object_id"):
        if inputs.get("payment_id"):
            covered.add(str(inputs["payment_id"]))
        else:
            legacy.append((invoice_id, Decimal(str(inputs["amount"])), inputs.get("date")))
    for invoice_id, amount, day in legacy:
        match = (Payment.objects.filter(invoice_id=invoice_id, amount=amount, paid_on=day, attempt__isnull=True)
                 .exclude(pk__in=covered).order_by("created_at").values_list("pk", flat=True).first())
        if match is not None:
            covered.add(str(match))
    return covered


def sweep_cash(result) -> None:
    received = (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED)
    legacy = None
    for payment in unposted_documents(Payment.objects.filter(status__in=received, paid_on__isnull=False)
                             .select_related("invoice"), "payment", "received").order_by("paid_on", "created_at"):
        if legacy is None:
            legacy = _legacy_posted_payments()
        if str(payment.pk) in legacy:
            continue
        result.payments += post_payment(source_id=str(payment.pk), invoice_id=payment.invoice_id,
                                        customer_id=payment.customer_id, amount=payment.amount,
                                        applied=payment.amount_applied, currency=payment.currency, on=payment.paid_on,
                                        memo=f"{payment.get_method_display().capitalize()} payment on invoice "
                                             f"{payment.invoice.number}")
    # Refunds without a credit note (with one, the credit note's entry pays the cash out).
    refunds = unposted_documents(Refund.objects.filter(status=RefundStatus.SUCCEEDED, credit_note__isnull=True)
                        .select_related("payment__invoice"), "refund", "paid_out").order_by("updated_at", "pk")
    for refund in refunds:
        payment = refund.payment
        earlier = Refund.objects.filter(payment=payment, status=RefundStatus.SUCCEEDED, credit_note__isnull=True) \
            .exclude(pk=refund.pk).filter(Q(updated_at__lt=refund.updated_at) | Q(updated_at=refund.updated_at,
                                                                                   pk__lt=refund.pk))
        taken = sum(earlier.values_list("amount", flat=True), ZERO)
        unapplied = max(payment.amount - payment.amount_applied - taken, ZERO)
        result.refunds += post_refund(source_id=str(refund.pk), invoice_id=payment.invoice_id,
                                      customer_id=payment.customer_id, amount=refund.amount,
                                      from_credit=min(unapplied, refund.amount), currency=refund.currency,
                                      on=local_day(refund.updated_at),
                                      memo=f"Refund of a payment on invoice {payment.invoice.number}: {refund.reason}")
    for event in unposted_documents(AuditEvent.objects.filter(action="invoice.payment_reversed"), "payment", "reversed") \
            .order_by("created_at"):
        amount = Decimal(str(event.inputs.get("amount") or 0))
        invoice = Invoice.objects.filter(pk=event.object_id).only("pk", "customer_id", "currency", "number").first()
        if invoice is None or amount <= 0:
            continue
        result.reversals += post_payment_reversal(source_id=str(event.pk), invoice_id=invoice.pk,
                                                  customer_id=invoice.customer_id, amount=amount,
                                                  currency=invoice.currency, on=local_day(event.created_at),
                                                  memo=f"Payment reversed on invoice {invoice.number}: "
                                                       f"{event.inputs.get('reason', '')}")


