"""Dunning e-mails (DESIGN.md §7): HTML + text, the invoice PDF attached, a link to update the
payment method (`DUNNING_UPDATE_PAYMENT_URL`, formatted with the customer's external id and the
invoice id). Sent through Django's mail backend after the step's transaction committed; each one
is logged as an `InvoiceEmail` row (the invoice's delivery log) and on the step's outcome."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils import timezone

from common.audit import audit_record
from dunning.models import DunningStep, StepKind, StepStatus
from invoicing.models import EmailStatus, InvoiceEmail
from invoicing.pdf import invoice_pdf_bytes, invoice_pdf_filename

logger = logging.getLogger(__name__)

SUBJECTS = {
    "payment_failed": "Payment failed for invoice {number}",
    "update_payment_method": "Action required: update the payment method for invoice {number}",
}


def update_payment_url(*, customer_external_id: str, invoice_id) -> str:
    template = getattr(settings, "DUNNING_UPDATE_PAYMENT_URL", "") or "https://billing.example.com/pay/{customer}"
    return template.format(customer=customer_external_id, invoice=invoice_id)


def dunning_email_context(step: DunningStep) -> dict:
    case = step.case
    invoice = case.invoice
    snapshot = invoice.customer_snapshot or {}
    return {
        "case": case, "invoice": invoice, "customer": case.customer, "template": step.template,
        "customer_name": snapshot.get("name") or case.customer.name,
        "amount_due": invoice.amount_due, "currency": invoice.currency, "decline_code": case.decline_code,
        "update_url": update_payment_url(customer_external_id=case.customer.external_id, invoice_id=invoice.pk),
        "next_retry": case.steps.filter(kind=StepKind.RETRY, status=StepStatus.SCHEDULED).order_by("scheduled_at").first(),
        "seller": getattr(settings, "SELLER", {}) if isinstance(getattr(settings, "SELLER", None), dict) else {},
    }


def dunning_email_send(*, step_id: int) -> str:
    """Send the step's e-mail; returns "sent" or "failed" (the error is on the delivery row)."""
    step = DunningStep.objects.select_related("case__invoice", "case__customer").get(pk=step_id)
    invoice = step.case.invoice
    snapshot = invoice.customer_snapshot or {}
    address = snapshot.get("billing_email") or snapshot.get("email") or step.case.customer.billing_email \
        or step.case.customer.email or ""
    subject = SUBJECTS.get(step.template, SUBJECTS["payment_failed"]).format(number=invoice.number or invoice.pk)
    log = InvoiceEmail.objects.create(invoice=invoice, to=address[:500], subject=subject[:255],
                                      requested_by=f"rule:dunning:{step.rule}", status=EmailStatus.QUEUED)
    error = ""
    try:
        validate_email(address)
    except ValidationError:
        error = f"No valid e-mail address for the customer ({address!r})."
    if not error:
        try:
            context = dunning_email_context(step)
            text = render_to_string(f"dunning/{step.template}.txt", context)
            html = render_to_string(f"dunning/{step.template}.html", context)
            message = EmailMultiAlternatives(subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL,
                                             to=[address])
            message.attach_alternative(html, "text/html")
            message.attach(invoice_pdf_filename(invoice), invoice_pdf_bytes(invoice=invoice), "application/pdf")
            message.send(fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - recorded on the delivery row and the step
            logger.warning("dunning e-mail for step %s failed", step_id, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
    if error:
        log.status, log.error = EmailStatus.FAILED, error
    else:
        log.status, log.sent_at = EmailStatus.SENT, timezone.now()
    log.save(update_fields=["status", "error", "sent_at"])
    outcome = "failed" if error else "sent"
    DunningStep.objects.filter(pk=step_id).update(outcome=outcome, inputs={**step.inputs, "email_log": log.pk,
                                                                         "to": address, "error": error[:300]},
                                                  updated_at=timezone.now())

    audit_record(action=f"dunning.email_{outcome}", obj=step.case, actor="rule:dunning", rule=step.rule,
                 inputs={"case": step.case_id, "step": step.pk, "template": step.template, "to": address,
                         "email_log": log.pk, "error": error[:300], "invoice": str(invoice.pk),
                         "decline_code": step.case.decline_code})
    return outcome
