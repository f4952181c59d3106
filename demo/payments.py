"""Demo payments (issue 13): card customers (one always declines), a bank transfer, a refund and a
dispute, all through the payments services. Card steps need the local Stripe sandbox
(`make demo` starts it and points STRIPE_API_BASE at it); without one they are skipped, never
sent anywhere else. Idempotent: a customer that already has a payment method is left alone."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlparse

from django.conf import settings

from common.errors import ApplicationError
from customers.models import Customer
from customers.services import customer_update
from invoicing.credit_notes import credit_note_create
from invoicing.models import Invoice, InvoiceStatus
from payments.models import AttemptStatus, Payment, PaymentMethod, PaymentStatus, Refund
from payments.services import (payment_charge_invoice, payment_dispute_open, payment_method_attach,
                               payment_record_manual)

ACTOR = "seed_demo"
CARD_CUSTOMERS = {  # customer → the sandbox test card it pays with
    "acme": "pm_card_visa",
    "initech": "pm_card_chargeDeclinedInsufficientFunds",  # always declines: dunning material
    "hooli": "pm_card_mastercard",
}
BANK_TRANSFER_CUSTOMER = "globex"


def _sandbox_configured() -> bool:
    host = urlparse(settings.STRIPE_API_BASE or "").hostname
    return host in ("127.0.0.1", "localhost", "::1")


def _open_invoices(customer: Customer):
    return Invoice.objects.filter(customer=customer, status=InvoiceStatus.FINALIZED, amount_due__gt=0).order_by(
        "issue_date", "number")


def seed_payments() -> dict:
    summary = {"card payments": 0, "declined attempts": 0, "bank transfers": 0, "refunds": 0, "disputes": 0}
    customers = {c.external_id: c for c in Customer.objects.filter(external_id__in=[*CARD_CUSTOMERS,
                                                                                       BANK_TRANSFER_CUSTOMER])}
    transfer_customer = customers.get(BANK_TRANSFER_CUSTOMER)
    if transfer_customer is not None and not Payment.objects.filter(customer=transfer_customer).exists():
        for index, invoice in enumerate(_open_invoices(transfer_customer)):
            amount = invoice.amount_due if index else (invoice.amount_due / 2).quantize(Decimal("0.01"))
            payment_record_manual(invoice=invoice, amount=amount, method="bank_transfer",
                                  reference=f"SEPA {invoice.number}", actor=ACTOR)
            summary["bank transfers"] += 1
    if not _sandbox_configured():
        summary["card payments"] = "skipped (no local Stripe sandbox: STRIPE_API_BASE)"
        return summary
    for external_id, card in CARD_CUSTOMERS.items():
        customer = customers.get(external_id)
        if customer is None or PaymentMethod.objects.filter(customer=customer).exists():
            continue
        try:
            payment_method_attach(customer=customer, stripe_payment_method=card, actor=ACTOR)
        except ApplicationError as exc:
            summary["card payments"] = f"skipped ({exc.message})"
            return summary
        customer_update(customer=customer, collection_method="charge_automatically", actor=ACTOR)
        for invoice in _open_invoices(customer):
            attempt = payment_charge_invoice(invoice=invoice, actor=ACTOR, rule="demo_charge")
            summary["card payments" if attempt.status == AttemptStatus.SUCCEEDED else "declined attempts"] += 1
    acme_paid = Payment.objects.filter(customer__external_id="acme", method="card",
                                       status=PaymentStatus.SUCCEEDED).order_by("created_at").first()
    if acme_paid is not None and not Refund.objects.filter(payment__customer__external_id="acme").exists():
        invoice = acme_paid.invoice
        amount = min(Decimal("50.00"), invoice.total)
        try:
            credit_note_create(invoice=invoice, amount=amount, reason="Goodwill: API outage on the 3rd",
                               outcome="refund", actor=ACTOR)
            summary["refunds"] += 1
        except ApplicationError:
            pass
    hooli_paid = Payment.objects.filter(customer__external_id="hooli", method="card",
                                        status=PaymentStatus.SUCCEEDED, disputed_at__isnull=True).order_by("-created_at").first()
    if hooli_paid is not None and not Payment.objects.filter(customer__external_id="hooli",
                                                             disputed_at__isnull=False).exists():
        # What the sandbox's charge.dispute.created webhook does once the app is up, applied directly here.
        payment_dispute_open(payment=hooli_paid, amount=hooli_paid.amount, dispute_id="dp_demo_hooli",
                             reason="product_not_received", actor=ACTOR)
        summary["disputes"] += 1
    return summary
