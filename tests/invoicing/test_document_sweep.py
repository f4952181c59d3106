"""Issue 10 item 8: document tasks survive a lost worker (late ack + reject on worker lost), and a
sweep re-enqueues finalized invoices whose PDF or e-mail never happened."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from invoicing import tasks
from invoicing.models import EmailStatus, Invoice, InvoiceEmail
from tests.invoicing.test_emails import _bill

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("task", [tasks.invoice_documents_fan_out, tasks.invoice_pdf_render, tasks.invoice_email_deliver,
                                  tasks.credit_note_documents_deliver, tasks.invoice_documents_sweep])
def test_document_tasks_are_redelivered_when_their_worker_dies(task):
    assert task.acks_late is True and task.reject_on_worker_lost is True


def test_the_sweep_is_scheduled():
    from billing_site.celery import app

    assert any(e["task"] == "invoicing.tasks.invoice_documents_sweep" for e in app.conf.beat_schedule.values())


def _age(invoice: Invoice, delta: timedelta) -> None:
    Invoice.objects.filter(pk=invoice.pk).update(finalized_at=timezone.now() - delta)


def test_the_sweep_finishes_documents_lost_with_a_worker(world):
    # Finalized without running the on-commit document tasks: as if the worker was killed.
    lost = _bill(world, "lost", email="ap@lost.example")
    fresh = _bill(world, "fresh", email="ap@fresh.example")
    old = _bill(world, "old", email="ap@old.example")
    assert not lost.pdf and not InvoiceEmail.objects.exists()
    _age(lost, timedelta(hours=1))
    _age(fresh, timedelta(minutes=5))  # within the grace period: its tasks may still be queued
    _age(old, timedelta(days=10))  # older than the sweep looks back: never e-mailed out of the blue

    assert tasks.invoice_documents_sweep() == 1
    lost.refresh_from_db()
    assert lost.pdf and lost.number in lost.pdf.name
    assert [m.to for m in mail.outbox] == [["ap@lost.example"]]
    assert InvoiceEmail.objects.get(invoice=lost).status == EmailStatus.SENT
    assert not Invoice.objects.get(pk=fresh.pk).pdf and not Invoice.objects.get(pk=old.pk).pdf

    assert tasks.invoice_documents_sweep() == 0  # done: a second sweep finds nothing
    assert len(mail.outbox) == 1


def test_a_failed_delivery_is_not_retried_by_the_sweep(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = _bill(world, "silent")  # no address: the automatic send logs a failed attempt
    _age(invoice, timedelta(hours=1))
    assert InvoiceEmail.objects.get(invoice=invoice).status == EmailStatus.FAILED
    assert tasks.invoice_documents_sweep() == 0
