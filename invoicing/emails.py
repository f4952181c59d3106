"""Delivery of invoice and credit note documents by e-mail (DESIGN.md §6).

Every attempt writes one `InvoiceEmail` row (`sent` or `failed` with the error): the row is the
delivery log finance looks at, and a resend (admin action, `POST /api/v1/invoices/{id}/send/`) is
simply another attempt. A missing address or a transport error is a `failed` row, never an
exception: the caller (a Celery task after finalize) has nothing better to do with it than record
it. A resend someone asks for (admin action, API) with no address at all is refused instead (409
`no_email_address` naming `to`), so the caller learns it at once. The recipient comes from the
snapshot frozen at finalize, like the PDF.

The backend is Django's (`EMAIL_BACKEND`: console by default, SMTP by settings, locmem in tests)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils import timezone

from common.audit import actor_label
from common.errors import ConflictError
from invoicing.models import CreditNote, CreditNoteStatus, EmailStatus, Invoice, InvoiceEmail, InvoiceStatus
from invoicing.pdf import (
    credit_note_document_context,
    credit_note_pdf_bytes,
    credit_note_pdf_filename,
    invoice_document_context,
    invoice_pdf_bytes,
    invoice_pdf_filename,
)

logger = logging.getLogger(__name__)

SENDABLE_STATUSES = (InvoiceStatus.FINALIZED, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE)
NO_ADDRESS_ERROR = ("No e-mail address: the customer had neither a billing e-mail nor an e-mail when the "
                    "document was issued. Pass an address to resend.")


def _recipients(explicit, snapshot: dict) -> list[str]:
    if explicit:
        values = [explicit] if isinstance(explicit, str) else list(explicit)
    else:
        values = [snapshot.get("billing_email") or snapshot.get("email") or ""]
    return [v.strip() for value in values for v in str(value).split(",") if v.strip()]


def _invalid_addresses(recipients: list[str]) -> list[str]:
    bad = []
    for address in recipients:
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    return bad


def _deliver(log: InvoiceEmail, *, recipients: list[str], reply_to: str, body: str, attachment) -> InvoiceEmail:
    """Send one message and record the outcome on `log`. `attachment` is a callable returning
    (filename, bytes) so a rendering failure is recorded like a transport failure."""
    error = ""
    if not recipients:
        error = NO_ADDRESS_ERROR
    elif bad := _invalid_addresses(recipients):
        error = f"Invalid e-mail address: {', '.join(bad)}"
    if not error:
        try:
            filename, content = attachment()
            message = EmailMessage(subject=log.subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL,
                                   to=recipients, reply_to=[reply_to] if reply_to else None)
            message.attach(filename, content, "application/pdf")
            message.send(fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - any failure is logged on the row, the caller goes on
            logger.warning("e-mail %s to %s failed", log.pk, log.to, exc_info=True)
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if error:
        log.status, log.error = EmailStatus.FAILED, error
    else:
        log.status, log.sent_at = EmailStatus.SENT, timezone.now()
    log.save(update_fields=["status", "error", "sent_at"])
    return log


def _require_recipients(recipients: list[str]) -> None:
    """A (re)send someone asked for with no address anywhere is refused, not logged as a failure."""
    if not recipients:
        raise ConflictError(NO_ADDRESS_ERROR, code="no_email_address", fields={"to": [NO_ADDRESS_ERROR]})


def invoice_email_send(*, invoice: Invoice, actor=None, to: str | list[str] | None = None,
                       log_missing_address: bool = False) -> InvoiceEmail:
    """E-mail a finalized invoice with its PDF attached to the snapshot's billing e-mail (or `to`).
    Returns the delivery row (`sent` or `failed`); a draft or voided invoice is a 409, and so is no
    address at all unless `log_missing_address` (the automatic send records it as a failed row)."""
    invoice = Invoice.objects.get(pk=invoice.pk)
    if invoice.status not in SENDABLE_STATUSES:
        raise ConflictError(f"Only an issued invoice can be e-mailed; this one is {invoice.status}.",
                            code="invalid_state")
    snapshot = dict(invoice.customer_snapshot or {})
    recipients = _recipients(to, snapshot)
    if not log_missing_address:
        _require_recipients(recipients)
    context = invoice_document_context(invoice)
    seller = context["seller"]
    log = InvoiceEmail.objects.create(
        invoice=invoice, to=", ".join(recipients)[:500], requested_by=actor_label(actor),
        subject=f"Invoice {invoice.number} from {seller.get('name', '')}".strip()[:255], status=EmailStatus.QUEUED,
    )
    body = render_to_string("invoicing/invoice_email.txt", context)
    return _deliver(log, recipients=recipients, reply_to=seller.get("email", ""), body=body,
                    attachment=lambda: (invoice_pdf_filename(invoice), invoice_pdf_bytes(invoice=invoice)))


def invoice_email_send_once(*, invoice: Invoice) -> InvoiceEmail | None:
    """The automatic delivery after finalize: skipped when the invoice was already sent (a Celery
    redelivery) or is no longer sendable (voided in the meantime)."""
    invoice = Invoice.objects.get(pk=invoice.pk)
    if invoice.status not in SENDABLE_STATUSES or invoice.emails.filter(status=EmailStatus.SENT).exists():
        return None
    return invoice_email_send(invoice=invoice, actor="system", log_missing_address=True)


def credit_note_email_send(*, credit_note: CreditNote, actor=None, to: str | list[str] | None = None,
                           log_missing_address: bool = False) -> InvoiceEmail:
    """E-mail a credit note with its PDF attached; same logging and failure rules as invoices."""
    credit_note = CreditNote.objects.select_related("invoice").get(pk=credit_note.pk)
    if credit_note.status != CreditNoteStatus.ISSUED:
        raise ConflictError(f"Only an issued credit note can be e-mailed; this one is {credit_note.status}.",
                            code="invalid_state")
    context = credit_note_document_context(credit_note)
    seller = context["seller"]
    recipients = _recipients(to, context["customer"])
    if not log_missing_address:
        _require_recipients(recipients)
    log = InvoiceEmail.objects.create(
        credit_note=credit_note, to=", ".join(recipients)[:500],
        requested_by=actor_label(actor), status=EmailStatus.QUEUED,
        subject=f"Credit note {credit_note.number} from {seller.get('name', '')}".strip()[:255],
    )
    body = render_to_string("invoicing/credit_note_email.txt", context)
    return _deliver(log, recipients=recipients, reply_to=seller.get("email", ""), body=body,
                    attachment=lambda: (credit_note_pdf_filename(credit_note),
                                        credit_note_pdf_bytes(credit_note=credit_note)))


def credit_note_email_send_once(*, credit_note: CreditNote) -> InvoiceEmail | None:
    credit_note = CreditNote.objects.get(pk=credit_note.pk)
    if credit_note.status != CreditNoteStatus.ISSUED or credit_note.emails.filter(status=EmailStatus.SENT).exists():
        return None
    return credit_note_email_send(credit_note=credit_note, actor="system", log_missing_address=True)
