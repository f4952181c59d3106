"""Invoice e-mail delivery: sent after finalize with the PDF attached, logged, re-sendable, and a
missing address is a logged failure rather than an exception."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import override_settings
from pypdf import PdfReader

from customers.models import Customer
from invoicing.emails import credit_note_email_send, invoice_email_send
from invoicing.models import CreditNote, EmailStatus, Invoice, InvoiceEmail, InvoiceStatus
from invoicing.tasks import invoice_email_deliver

pytestmark = pytest.mark.django_db


class BrokenBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ConnectionRefusedError("SMTP server refused the connection")


def _bill(world, external_id: str, *, as_of=date(2026, 2, 1), finalize=True, **customer) -> Invoice:
    world.plan(f"plan-{external_id}", amount="49.00", pay_in_advance=False, charges=[], name="Starter")
    world.customer(external_id, **customer)
    world.subscription(f"sub-{external_id}", customer=external_id, plan=f"plan-{external_id}",
                       start_date=date(2026, 1, 1))
    world.run(as_of, finalize=finalize)
    return Invoice.objects.get(customer__external_id=external_id)


def _pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_finalize_renders_stores_and_emails_the_invoice(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = _bill(world, "acme", name="Acme Rockets", email="ops@acme.example", billing_email="ap@acme.example")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.total == Decimal("49.00")

    # The PDF was rendered and stored by the Celery task enqueued on commit.
    assert invoice.pdf and invoice.pdf_rendered_at is not None and invoice.number in invoice.pdf.name

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ap@acme.example"]  # the billing e-mail wins over the general one
    assert message.subject == f"Invoice {invoice.number} from Ledgerline Demo Inc."
    assert "Amount due: $49.00" in message.body and "Jan 1, 2026 \u2013 Jan 31, 2026" in message.body
    ((filename, content, mimetype),) = message.attachments
    assert (filename, mimetype) == (f"{invoice.number}.pdf", "application/pdf")
    text = _pdf_text(content)
    assert invoice.number in text and "Acme Rockets" in text and "Amount due $49.00" in text
    with invoice.pdf.open("rb") as handle:
        assert handle.read() == content  # the attachment is the stored document

    (log,) = InvoiceEmail.objects.filter(invoice=invoice)
    assert (log.status, log.to, log.error, log.requested_by) == (EmailStatus.SENT, "ap@acme.example", "", "system")
    assert log.sent_at is not None

    # A redelivered task (Celery acks late) does not send the invoice twice.
    assert invoice_email_deliver(str(invoice.pk)) is None
    assert len(mail.outbox) == 1


def test_resend_through_the_api_adds_a_delivery(world, billing_api, reader_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = _bill(world, "acme", email="ap@acme.example")
    assert len(mail.outbox) == 1

    response = billing_api.post(f"/api/v1/invoices/{invoice.pk}/send/", {}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["to"], body["error"]) == ("sent", "ap@acme.example", "")
    assert body["requested_by"].startswith("apikey:")

    response = billing_api.post(f"/api/v1/invoices/{invoice.pk}/send/", {"to": "finance@acme.example"}, format="json")
    assert response.status_code == 201 and response.json()["to"] == "finance@acme.example"

    assert [m.to for m in mail.outbox] == [["ap@acme.example"], ["ap@acme.example"], ["finance@acme.example"]]
    assert all(m.attachments[0][0] == f"{invoice.number}.pdf" for m in mail.outbox)
    assert InvoiceEmail.objects.filter(invoice=invoice, status=EmailStatus.SENT).count() == 3

    assert reader_api.post(f"/api/v1/invoices/{invoice.pk}/send/", {}, format="json").status_code == 403
    bad = billing_api.post(f"/api/v1/invoices/{invoice.pk}/send/", {"to": "not-an-address"}, format="json")
    assert bad.status_code == 400


def test_no_address_is_a_failed_delivery_not_an_exception(world, billing_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = _bill(world, "silent")  # neither email nor billing_email
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.pdf  # the document exists all the same
    assert mail.outbox == []
    (log,) = InvoiceEmail.objects.filter(invoice=invoice)
    assert log.status == EmailStatus.FAILED and log.to == "" and "No e-mail address" in log.error

    # The customer adds an address later: the invoice keeps its snapshot, so a resend names the address.
    Customer.objects.filter(external_id="silent").update(email="late@silent.example")
    response = billing_api.post(f"/api/v1/invoices/{invoice.pk}/send/", {}, format="json")
    assert response.status_code == 409  # issue 10: a resend with no address is refused, naming it
    assert response.json()["error"]["code"] == "no_email_address" and "to" in response.json()["error"]["fields"]
    assert InvoiceEmail.objects.filter(invoice=invoice).count() == 1
    ok = billing_api.post(f"/api/v1/invoices/{invoice.pk}/send/", {"to": "late@silent.example"}, format="json")
    assert ok.json()["status"] == "sent" and len(mail.outbox) == 1


@override_settings(EMAIL_BACKEND="tests.invoicing.test_emails.BrokenBackend")
def test_transport_failure_is_logged(world):
    invoice = _bill(world, "acme", email="ap@acme.example")
    log = invoice_email_send(invoice=invoice, actor="ops")
    assert log.status == EmailStatus.FAILED and log.sent_at is None
    assert log.error == "ConnectionRefusedError: SMTP server refused the connection"
    assert log.requested_by == "ops"


def test_drafts_cannot_be_emailed(world, billing_api):
    invoice = _bill(world, "acme", email="ap@acme.example", finalize=False)
    assert invoice.status == InvoiceStatus.DRAFT
    response = billing_api.post(f"/api/v1/invoices/{invoice.pk}/send/", {}, format="json")
    assert response.status_code == 409
    assert not InvoiceEmail.objects.exists() and mail.outbox == []


def test_a_finalize_batch_sends_one_email_per_invoice(world, django_capture_on_commit_callbacks):
    world.plan("starter", amount="49.00", pay_in_advance=False, charges=[])
    for name in ("a", "b", "c"):
        world.customer(name, email=f"ap@{name}.example")
        world.subscription(f"s-{name}", customer=name, plan="starter", start_date=date(2026, 1, 1))
    with django_capture_on_commit_callbacks(execute=True):
        world.run(date(2026, 2, 1))
    assert sorted(m.to[0] for m in mail.outbox) == ["ap@a.example", "ap@b.example", "ap@c.example"]
    assert InvoiceEmail.objects.filter(status=EmailStatus.SENT).count() == 3
    assert Invoice.objects.filter(status=InvoiceStatus.FINALIZED).exclude(pdf="").count() == 3


def test_credit_note_email(world):
    invoice = _bill(world, "acme", email="ap@acme.example")
    credit_note = CreditNote.objects.create(
        number="CN-2026-000007", invoice=invoice, customer=invoice.customer, currency="USD", outcome="refund",
        reason="Goodwill", issue_date=date(2026, 2, 3), subtotal=Decimal("9.00"), total=Decimal("9.00"),
        customer_snapshot=invoice.customer_snapshot)
    log = credit_note_email_send(credit_note=credit_note)
    assert log.status == EmailStatus.SENT and log.credit_note_id == credit_note.pk and log.invoice_id is None
    (message,) = mail.outbox
    assert message.subject == "Credit note CN-2026-000007 from Ledgerline Demo Inc."
    assert message.attachments[0][0] == "CN-2026-000007.pdf"
    assert "Total credited $9.00" in _pdf_text(message.attachments[0][1])


def test_admin_download_link_and_resend_action(world, admin_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = _bill(world, "acme", email="ap@acme.example")
    page = admin_client.get(f"/admin/invoicing/invoice/{invoice.pk}/change/")
    assert page.status_code == 200
    assert f"/admin/invoicing/invoice/{invoice.pk}/pdf/" in page.content.decode() and "Download PDF" in page.content.decode()

    pdf = admin_client.get(f"/admin/invoicing/invoice/{invoice.pk}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert invoice.number in _pdf_text(pdf.content)

    response = admin_client.post("/admin/invoicing/invoice/", {"action": "resend_email_selected",
                                                               "_selected_action": [str(invoice.pk)]}, follow=True)
    assert response.status_code == 200
    assert f"{invoice.number}: sent to ap@acme.example." in response.content.decode()
    assert len(mail.outbox) == 2
    assert list(InvoiceEmail.objects.filter(invoice=invoice).values_list("status", flat=True)) == ["sent", "sent"]
    assert InvoiceEmail.objects.filter(invoice=invoice, requested_by="user:admin").count() == 1
