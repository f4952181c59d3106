"""Credit notes: corrections of a finalized (or paid) invoice, which itself stays immutable (DESIGN.md §6).

Rules:
- Only against a `finalized` or `paid` invoice (409 `invalid_state` otherwise).
- What remains creditable on an invoice is its total minus the totals of its issued credit notes;
  a credit note above it is refused (409 `credit_exceeds_remaining`).
- **By amount** (`amount`, tax included): each tax rate gives back its proportional share of what
  remains of that rate's tax, `round_half_up(remaining_tax_k × amount / remaining_total)`; the
  net (`subtotal`) is the rest. Crediting the whole remainder therefore takes each rate's exact
  remaining tax, so the credit notes of an invoice always sum to its tax and total to the cent.
- **By lines** (`lines=[{"line_id", "amount"}]`, pre-tax line amounts as on the invoice; an omitted
  amount means all that remains of the line): each line is capped by what remains creditable on it
  (its amount minus earlier credit-note lines, else 409 `credit_exceeds_remaining`). An invoice
  discount is shared proportionally: net = `round(Σ lines × (subtotal − discount) / subtotal)`, and
  the difference is shown as a "Discount share" line. Tax per rate = `round(rate × taxable net)`
  (only taxable lines), capped by that rate's remaining tax; crediting the whole remaining net
  takes the exact remaining tax. If `amount` is passed too it must equal the resulting total (400).
- Outcome: while the invoice still has an amount due the credit note reduces it
  (`reduce_amount_due`; at 0 the invoice becomes paid; any excess goes to the customer's credit
  balance). Otherwise `credit_balance` (default: the customer's balance in the invoice currency)
  or `refund` (recorded with an audit event; the Stripe refund itself comes with payments).
- Numbered from the gapless `CN` series per year (`CN-2026-000001`), in the same transaction.
- Lock order: invoice → CN number series → customer (credit balance), so concurrent credit notes
  on one invoice are serialized and the remaining amount is checked under the invoice lock.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from catalog.taxes import tax_at_rate
from common.audit import actor_label, actor_user, audit_record
from common.errors import ApplicationError, ConflictError
from common.locks import row_lock
from common.money import format_money, money_input, quantize_money
from common.timeutil import local_date
from customers.models import BalanceTransactionKind, CustomerBalanceTransaction
from customers.services import balance_adjust, credit_balance_credit_from_credit_note
from invoicing.models import (CreditNote, CreditNoteLine, CreditNoteOutcome, CreditNoteStatus, Invoice, InvoiceLine,
                              InvoiceStatus)
from invoicing.services import customer_snapshot, invoice_number_take

ZERO = Decimal(0)
CREDIT_NOTE_SERIES = "CN"
CREDITABLE_STATES = (InvoiceStatus.FINALIZED, InvoiceStatus.PAID)


def _tax_key(line: dict) -> tuple:
    return (line.get("tax_rate_id"), line.get("name"), str(line.get("rate")))


def credit_note_remaining(invoice: Invoice) -> dict:
    """What is still creditable on `invoice`: total, net, tax per rate (keyed like its tax lines),
    and per invoice line. Read under the invoice lock when deciding."""
    currency = invoice.currency
    issued = list(CreditNote.objects.filter(invoice=invoice, status=CreditNoteStatus.ISSUED))
    credited_tax: dict = defaultdict(lambda: ZERO)
    for note in issued:
        for line in note.tax_lines:
            credited_tax[_tax_key(line)] += Decimal(line["amount"])
    per_line: dict = defaultdict(lambda: ZERO)
    for line_id, amount in CreditNoteLine.objects.filter(credit_note__in=issued, invoice_line__isnull=False) \
            .values_list("invoice_line_id", "amount"):
        per_line[line_id] += amount
    return {
        "total": quantize_money(invoice.total - sum((n.total for n in issued), ZERO), currency),
        "net": quantize_money(invoice.subtotal - invoice.discount - sum((n.subtotal for n in issued), ZERO), currency),
        "tax": {_tax_key(t): quantize_money(Decimal(t["amount"]) - credited_tax[_tax_key(t)], currency)
                for t in invoice.tax_lines},
        "lines": per_line,
    }


def _tax_line(source: dict, *, amount: Decimal, currency: str, taxable_amount: Decimal) -> dict:
    return {"tax_rate_id": source.get("tax_rate_id"), "name": source.get("name"), "rate": source.get("rate"),
            "taxable_amount": format_money(taxable_amount, currency), "amount": format_money(amount, currency)}


def _by_amount(invoice: Invoice, remaining: dict, amount: Decimal) -> tuple[Decimal, list[dict]]:
    currency = invoice.currency
    tax_lines = []
    for source in invoice.tax_lines:
        left = remaining["tax"][_tax_key(source)]
        share = left if amount == remaining["total"] else quantize_money(left * amount / remaining["total"], currency)
        tax_lines.append((source, share))
    tax = sum((share for _, share in tax_lines), ZERO)
    net = amount - tax
    return net, [_tax_line(s, amount=a, currency=currency, taxable_amount=net) for s, a in tax_lines]


def _by_lines(invoice: Invoice, remaining: dict, requested: list[dict]) -> tuple[Decimal, list[dict], list[dict]]:
    """→ (net, tax lines, credit-note line dicts)."""
    currency = invoice.currency
    invoice_lines = {ln.pk: ln for ln in InvoiceLine.objects.filter(invoice=invoice)}
    chosen: dict = {}
    for index, item in enumerate(requested):
        field = f"lines[{index}]"
        line_id = item.get("line_id")
        line = invoice_lines.get(line_id) if isinstance(line_id, int) and not isinstance(line_id, bool) else None
        if line is None:
            raise ApplicationError(f"Line {line_id!r} is not a line of invoice {invoice}.",
                                   fields={f"{field}.line_id": ["not a line of this invoice"]})
        if line_id in chosen:
            raise ApplicationError(f"Line {line_id} is listed twice.", fields={f"{field}.line_id": ["duplicate"]})
        left = quantize_money(line.amount - remaining["lines"][line_id], currency)
        raw = item.get("amount")
        amount = left if raw in (None, "") else money_input(raw, currency=currency, field=f"{field}.amount")
        if amount <= 0 or amount > left:
            raise ConflictError(f"Line {line_id} ({line.description}) has {format_money(max(left, ZERO), currency)} "
                                f"{currency} left to credit; {format_money(amount, currency)} asked.",
                                code="credit_exceeds_remaining", fields={f"{field}.amount": ["exceeds what remains"]})
        chosen[line_id] = (line, amount)
    gross = sum((a for _, a in chosen.values()), ZERO)
    taxable_gross = sum((a for ln, a in chosen.values() if ln.taxable), ZERO)
    invoice_net = invoice.subtotal - invoice.discount
    if invoice.subtotal <= 0:
        raise ConflictError("This invoice has nothing creditable.", code="credit_exceeds_remaining")
    if invoice.discount:
        net = quantize_money(gross * invoice_net / invoice.subtotal, currency)
        taxable_net = quantize_money(taxable_gross * invoice_net / invoice.subtotal, currency)
    else:
        net, taxable_net = gross, taxable_gross
    whole = net == remaining["net"]
    tax_lines = []
    for source in invoice.tax_lines:
        left = remaining["tax"][_tax_key(source)]
        share = left if whole else min(tax_at_rate(taxable_net, Decimal(source["rate"]), currency), left)
        tax_lines.append(_tax_line(source, amount=share, currency=currency, taxable_amount=taxable_net))
    note_lines = [{"invoice_line": line, "description": line.description[:500], "amount": amount}
                  for line, amount in chosen.values()]
    if gross != net:
        note_lines.append({"invoice_line": None, "amount": net - gross,
                           "description": f"Discount share ({format_money(invoice.discount, currency)} {currency} "
                                          f"on the invoice)"})
    return net, tax_lines, note_lines


def credit_note_create(*, invoice: Invoice, amount=None, lines: list[dict] | None = None, reason: str,
                       outcome: str | None = None, actor=None, issue_date: date | None = None) -> CreditNote:
    """Issue a credit note against `invoice` for `amount` (tax included) or for specific `lines`;
    see the module docstring for the rules."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("A reason is required.", fields={"reason": ["required"]})
    if amount is None and not lines:
        raise ApplicationError("Give an amount or lines to credit.", fields={"amount": ["required"]})
    if outcome is not None and outcome not in CreditNoteOutcome.values:
        raise ApplicationError(f"Unknown outcome '{outcome}'.", fields={"outcome": ["invalid choice"]})
    with transaction.atomic():
        invoice = row_lock(Invoice, invoice.pk, related=("customer",))
        if invoice.status not in CREDITABLE_STATES:
            raise ConflictError(f"Only a finalized or paid invoice can be credited; this invoice is {invoice.status}.",
                                code="invalid_state")
        currency = invoice.currency
        if amount is not None:
            amount = money_input(amount, currency=currency, field="amount")
        remaining = credit_note_remaining(invoice)
        if remaining["total"] <= 0:
            raise ConflictError(f"Nothing remains creditable on invoice {invoice.number}.",
                                code="credit_exceeds_remaining", fields={"amount": ["exceeds what remains"]})
        if lines:
            net, tax_lines, note_lines = _by_lines(invoice, remaining, lines)
            total = net + sum((Decimal(t["amount"]) for t in tax_lines), ZERO)
            if amount is not None and amount != total:
                raise ApplicationError(f"The lines credit {format_money(total, currency)} {currency} with tax, "
                                       f"not {format_money(amount, currency)}.", code="amount_mismatch",
                                       fields={"amount": [f"expected {format_money(total, currency)}"]})
        else:
            if amount > remaining["total"]:
                raise ConflictError(f"{format_money(remaining['total'], currency)} {currency} remains creditable on "
                                    f"invoice {invoice.number}; {format_money(amount, currency)} asked.",
                                    code="credit_exceeds_remaining", fields={"amount": ["exceeds what remains"]})
            net, tax_lines = _by_amount(invoice, remaining, amount)
            total = amount
            note_lines = [{"invoice_line": None, "description": reason[:500], "amount": net}]
        tax = sum((Decimal(t["amount"]) for t in tax_lines), ZERO)
        if total > remaining["total"]:
            raise ConflictError(f"{format_money(remaining['total'], currency)} {currency} remains creditable on "
                                f"invoice {invoice.number}; {format_money(total, currency)} asked.",
                                code="credit_exceeds_remaining", fields={"amount": ["exceeds what remains"]})
        if total <= 0:
            raise ApplicationError("A credit note must credit more than 0.", fields={"amount": ["not positive"]})

        has_due = invoice.amount_due > 0
        if outcome is None:
            outcome = CreditNoteOutcome.REDUCE_AMOUNT_DUE if has_due else CreditNoteOutcome.CREDIT_BALANCE
        if has_due and outcome != CreditNoteOutcome.REDUCE_AMOUNT_DUE:
            raise ConflictError(f"Invoice {invoice.number} still has {format_money(invoice.amount_due, currency)} "
                                f"{currency} due: a credit note reduces it first (outcome reduce_amount_due).",
                                code="outcome_not_allowed", fields={"outcome": ["invoice has an amount due"]})
        if not has_due and outcome == CreditNoteOutcome.REDUCE_AMOUNT_DUE:
            raise ConflictError(f"Invoice {invoice.number} has nothing due; choose credit_balance or refund.",
                                code="outcome_not_allowed", fields={"outcome": ["nothing due"]})

        customer = invoice.customer
        now = timezone.now()
        issue_date = issue_date or local_date(now, customer.timezone)

        (number,) = invoice_number_take(series=CREDIT_NOTE_SERIES, year=issue_date.year)
        note = CreditNote.objects.create(
            number=number, invoice=invoice, customer=customer, currency=currency, outcome=outcome, reason=reason[:500],
            issue_date=issue_date, subtotal=net, tax=tax, total=total, tax_lines=tax_lines,
            customer_snapshot=customer_snapshot(customer), created_by=actor_label(actor))
        CreditNoteLine.objects.bulk_create([CreditNoteLine(credit_note=note, **line) for line in note_lines])

        effects: dict = {}
        if outcome == CreditNoteOutcome.REDUCE_AMOUNT_DUE:
            applied = min(total, invoice.amount_due)
            old_status, old_due = invoice.status, invoice.amount_due
            invoice.amount_due = quantize_money(invoice.amount_due - applied, currency)
            fields = ["amount_due", "updated_at"]
            if invoice.amount_due == 0:
                invoice.status = InvoiceStatus.PAID
                invoice.paid_at = now
                fields += ["status", "paid_at"]
            invoice.save(update_fields=fields)
            effects = {"amount_due_before": old_due, "amount_due_after": invoice.amount_due, "invoice_status_before": old_status,
                       "invoice_status_after": invoice.status, "reduced": applied}
            excess = total - applied
            if excess > 0:
                _credit_balance(note, amount=excess, actor=actor)
                effects["excess_to_credit_balance"] = excess
        elif outcome == CreditNoteOutcome.CREDIT_BALANCE:
            _credit_balance(note, amount=total, actor=actor)
            effects = {"credited_to_balance": total}
        else:
            effects = {"refund": total, "refund_status": "recorded; paid out by the payments module"}
            audit_record(action="credit_note.refund_requested", obj=note, actor=actor_label(actor),
                         actor_user=actor_user(actor), rule="credit_note_outcome_refund",
                         inputs={"invoice": invoice.number, "amount": total, "currency": currency})
        audit_record(action="credit_note.issued", obj=note, actor=actor_label(actor), actor_user=actor_user(actor),
                     rule="by_lines" if lines else "by_amount",
                     inputs={"invoice": invoice.number, "invoice_id": str(invoice.pk), "number": number,
                             "requested_amount": amount, "requested_lines": _plain(lines), "reason": reason,
                             "outcome": outcome, "currency": currency, "subtotal": net, "tax": tax, "total": total,
                             "tax_lines": tax_lines, "remaining_before": remaining["total"],
                             "remaining_after": remaining["total"] - total, **effects})
        note_id = str(note.pk)
        transaction.on_commit(lambda: _after_issue(note_id))
    return note


def _after_issue(credit_note_id: str) -> None:
    """After commit: render, store and e-mail the credit note's PDF (Celery, `invoicing.tasks`). The
    note is committed already, so an enqueue failure is logged, never raised into the caller."""
    try:
        from invoicing.tasks import credit_note_documents_deliver  # noqa: PLC0415 — inside the enqueue guard: a failure is logged, never raised

        credit_note_documents_deliver.delay(credit_note_id)
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).exception("could not enqueue the documents of credit note %s", credit_note_id)


def _credit_balance(note: CreditNote, *, amount: Decimal, actor) -> None:
    credit_balance_credit_from_credit_note(customer=note.customer, currency=note.currency, amount=amount,
                                           credit_note_id=note.pk, invoice_id=note.invoice_id, actor=actor)


def credit_note_void(*, credit_note: CreditNote, actor=None, reason: str = "") -> CreditNote:
    """Undo an issued credit note: an amount-due reduction is restored (a paid invoice that it
    settled goes back to finalized); balance credit is taken back (409 if already spent). A refund
    note cannot be voided (the money left). Its number stays used (gapless series)."""
    with transaction.atomic():
        invoice = row_lock(Invoice, credit_note.invoice_id)
        note = CreditNote.objects.select_for_update().select_related("customer").get(pk=credit_note.pk)
        if note.status != CreditNoteStatus.ISSUED:
            raise ConflictError(f"Credit note {note.number} is {note.status}.", code="invalid_state")
        if note.outcome == CreditNoteOutcome.REFUND:
            raise ConflictError(f"Credit note {note.number} was refunded; it cannot be voided.", code="invalid_state")
        to_balance = CustomerBalanceTransaction.objects.filter(kind=BalanceTransactionKind.CREDIT_NOTE,
                                                               credit_note_id=str(note.pk)).first()
        taken_back = to_balance.amount if to_balance is not None else ZERO
        if taken_back > 0:
            balance_adjust(customer=note.customer, currency=note.currency, amount=-taken_back,
                           description=f"Void of credit note {note.number}", actor=actor)
        effects: dict = {"balance_taken_back": taken_back}
        if note.outcome == CreditNoteOutcome.REDUCE_AMOUNT_DUE:
            restored = note.total - taken_back
            invoice.amount_due = quantize_money(invoice.amount_due + restored, invoice.currency)
            fields = ["amount_due", "updated_at"]
            if invoice.status == InvoiceStatus.PAID and invoice.amount_due > 0:
                invoice.status = InvoiceStatus.FINALIZED
                invoice.paid_at = None
                fields += ["status", "paid_at"]
            invoice.save(update_fields=fields)
            effects.update({"amount_due_restored": restored, "invoice_status_after": invoice.status})
        note.status = CreditNoteStatus.VOID
        note.save(update_fields=["status", "updated_at"])
        audit_record(action="credit_note.voided", obj=note, actor=actor_label(actor), actor_user=actor_user(actor),
                     rule="manual", inputs={"number": note.number, "invoice": invoice.number, "reason": reason,
                                            "total": note.total, **effects})
    return note


def _plain(lines):
    if not lines:
        return None
    return [{"line_id": item.get("line_id"), "amount": str(item["amount"]) if item.get("amount") is not None else None}
            for item in lines]

