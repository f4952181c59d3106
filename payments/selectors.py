"""Reads for the payments API and pages."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from common.errors import ApplicationError, NotFoundError
from payments.models import Payment, PaymentMethod, PaymentStatus


def payments_list(*, invoice: str | None = None, customer: str | None = None, status: str | None = None) -> QuerySet[Payment]:
    qs = Payment.objects.select_related("customer", "attempt").prefetch_related("refunds").order_by("-created_at", "pk")
    if invoice:
        try:
            qs = qs.filter(invoice_id=uuid.UUID(str(invoice)))
        except ValueError:
            raise ApplicationError("invoice must be an invoice id (uuid).", fields={"invoice": ["not a valid uuid"]})
    if customer:
        qs = qs.filter(customer__external_id=customer)
    if status:
        if status not in PaymentStatus.values:
            raise ApplicationError(f"Unknown status '{status}'.",
                                   fields={"status": [f"must be one of {', '.join(PaymentStatus.values)}"]})
        qs = qs.filter(status=status)
    return qs


def payment_get(*, payment_id) -> Payment:
    try:
        pk = uuid.UUID(str(payment_id))
    except ValueError:
        raise NotFoundError(f"No payment {payment_id}.")
    payment = payments_list().filter(pk=pk).first()
    if payment is None:
        raise NotFoundError(f"No payment {payment_id}.")
    return payment


def payment_methods_for(*, customer) -> QuerySet[PaymentMethod]:
    return PaymentMethod.objects.filter(customer=customer, detached_at__isnull=True).order_by("-is_default", "-created_at")
