"""Invoice reads."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, QuerySet

from common.errors import NotFoundError
from invoicing.models import BillingRun, Invoice, InvoiceLine


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


def invoice_get(*, invoice_id) -> Invoice:
    """The invoice by its uuid; 404 for an unknown or malformed id."""
    try:
        uuid.UUID(str(invoice_id))
    except ValueError as exc:
        raise NotFoundError(f"Invoice '{invoice_id}' not found.") from exc
    invoice = invoices_list().filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFoundError(f"Invoice '{invoice_id}' not found.")
    return invoice


def invoices_review_queue() -> QuerySet[Invoice]:
    return invoices_list(status="draft", needs_review=True)


def billing_run_get(*, run_id) -> BillingRun:
    run = BillingRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(f"Billing run '{run_id}' not found.")
    return run
