"""Reads for the API, admin and pages: schedules per invoice, input parsing shared by callers."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from common.errors import ApplicationError, NotFoundError
from common.money import format_money, is_valid_currency
from invoicing.models import Invoice
from revrec.close import parse_month
from revrec.models import PerformanceObligation, ScheduleEntry

ZERO = Decimal(0)


def parse_month_param(value, field: str) -> date:
    try:
        return parse_month(value)
    except ValueError:
        raise ApplicationError(f"{field} must be a month YYYY-MM.", fields={field: ["expected YYYY-MM"]}) from None


def parse_date_param(value, field: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApplicationError(f"{field} must be a date YYYY-MM-DD.", fields={field: ["expected YYYY-MM-DD"]}) from None


def parse_currency_param(value, field: str = "currency", default: str = "USD") -> str:
    if value in (None, ""):
        return default
    code = str(value).upper()
    if not is_valid_currency(code):
        raise ApplicationError(f"{value!r} is not an ISO 4217 currency.", fields={field: ["unknown currency"]})
    return code


def parse_int_param(value, field: str, *, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApplicationError(f"{field} must be an integer.", fields={field: ["expected an integer"]}) from None
    if not low <= number <= high:
        raise ApplicationError(f"{field} must be between {low} and {high}.", fields={field: [f"{low}..{high}"]})
    return number


def schedules_for_invoice(*, invoice_id) -> list[dict]:
    if invoice_id in (None, ""):
        raise ApplicationError("invoice is required.", fields={"invoice": ["required"]})
    try:
        uuid.UUID(str(invoice_id))
    except ValueError:
        raise ApplicationError("invoice must be an invoice id (uuid).", fields={"invoice": ["not a uuid"]}) from None
    if not Invoice.objects.filter(pk=invoice_id).exists():
        raise NotFoundError(f"No invoice {invoice_id}.")
    obligations = list(PerformanceObligation.objects.filter(invoice_id=invoice_id).order_by("invoice_line__position", "pk"))
    entries: dict = {}
    for entry in ScheduleEntry.objects.filter(obligation__in=obligations).order_by("month", "pk"):
        entries.setdefault(entry.obligation_id, []).append(entry)
    out = []
    for o in obligations:
        by_month: dict = {}
        for e in entries.get(o.pk, []):
            by_month[e.month] = by_month.get(e.month, ZERO) + e.amount
        out.append({"invoice_line": o.invoice_line_id, "obligation": o.kind, "amount": format_money(o.amount - o.credited, o.currency),
                    "line_amount": format_money(o.line_amount, o.currency), "discount": format_money(o.discount, o.currency),
                    "credited": format_money(o.credited, o.currency), "currency": o.currency,
                    "service_start": o.service_start.isoformat(), "service_end": o.service_end.isoformat(), "voided": o.voided,
                    "entries": [{"month": f"{m:%Y-%m}", "amount": format_money(a, o.currency)} for m, a in sorted(by_month.items())],
                    "recognized": format_money(ZERO if o.voided else sum(
                        (e.amount for e in entries.get(o.pk, []) if e.posted_entry_id), ZERO), o.currency)})
    return out
