"""Invoice reads."""

from __future__ import annotations

import uuid

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from common.errors import NotFoundError
from invoicing.models import BillingRun, CreditNote, CreditNoteLine, Invoice, InvoiceEmail, InvoiceLine, InvoiceStatus


def invoices_list(*, customer: str | None = None, subscription: str | None = None, status: str | None = None,
                  needs_review: bool | None = None) -> QuerySet[Invoice]:
    """Filter by customer / subscription external id and status (comma-separated allowed)."""
    qs = (
        Invoice.objects.select_related("customer", "subscription")
        .prefetch_related(Prefetch("lines", queryset=InvoiceLine.objects.select_related("billable_metric", "invoice")))
        .order_by("-billing_date", "-created_at", "id")
    )
    if customer:
        qs = qs.filter(customer__external_id=customer)
    if subscription:
        qs = qs.filter(subscription__external_id=subscription)
    if status:
        qs = qs.filter(status__in=[s.strip() for s in status.split(",") if s.strip()])
    if needs_review is not None:
        qs = qs.filter(needs_review=needs_review)
    return qs


def _get_by_uuid(qs: QuerySet, pk, label: str):
    """The row by its uuid; 404 for an unknown or malformed id."""
    try:
        uuid.UUID(str(pk))
    except ValueError as exc:
        raise NotFoundError(f"{label} '{pk}' not found.") from exc
    row = qs.filter(pk=pk).first()
    if row is None:
        raise NotFoundError(f"{label} '{pk}' not found.")
    return row


def invoice_get(*, invoice_id) -> Invoice:
    return _get_by_uuid(invoices_list(), invoice_id, "Invoice")


def credit_notes_list(*, invoice: str | None = None, customer: str | None = None,
                      status: str | None = None) -> QuerySet[CreditNote]:
    """Filter by invoice uuid (a malformed one matches nothing), customer external id and status
    (comma-separated allowed)."""
    qs = (CreditNote.objects.select_related("invoice", "customer")
          .prefetch_related(Prefetch("lines", queryset=CreditNoteLine.objects.select_related("credit_note")))
          .order_by("-issue_date", "-number"))
    if invoice:
        try:
            qs = qs.filter(invoice_id=uuid.UUID(str(invoice)))
        except ValueError:
            qs = qs.none()
    if customer:
        qs = qs.filter(customer__external_id=customer)
    if status:
        qs = qs.filter(status__in=[s.strip() for s in status.split(",") if s.strip()])
    return qs


def credit_note_get(*, credit_note_id) -> CreditNote:
    return _get_by_uuid(credit_notes_list(), credit_note_id, "Credit note")


def billing_run_get(*, run_id) -> BillingRun:
    """The run by its integer id; 404 for an unknown or malformed id."""
    run = BillingRun.objects.filter(pk=int(run_id)).first() if str(run_id).isdigit() else None
    if run is None:
        raise NotFoundError(f"Billing run '{run_id}' not found.")
    return run


def invoices_missing_documents(*, now, grace, max_age) -> list:
    """Ids of issued invoices finalized between `now - max_age` and `now - grace` that still have no
    stored PDF or no e-mail attempt at all: their document tasks were lost (a killed worker, a
    broker restart). A failed attempt (no address, mail server refused) counts as an attempt; it is
    resent on request, not by the sweep."""
    attempted = InvoiceEmail.objects.filter(invoice=OuterRef("pk"))
    return list(
        Invoice.objects.filter(status__in=(InvoiceStatus.FINALIZED, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE),
                               finalized_at__gte=now - max_age, finalized_at__lt=now - grace)
        .filter(Q(pdf="") | ~Exists(attempted))
        .order_by("finalized_at", "pk").values_list("pk", flat=True)
    )
